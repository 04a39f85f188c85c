"""Physics: BTK/Tanaka-Kashiwaya models, spectrum preparation, fits, gaps and transport."""
