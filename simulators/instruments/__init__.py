"""One emulator per instrument model; each parses the real command set and keeps its state."""
