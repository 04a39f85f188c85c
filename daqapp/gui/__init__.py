"""The operator window (PyQt5 + pyqtgraph)."""
