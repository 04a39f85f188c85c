"""The operator window (Qt through qtpy: PyQt5 or PyQt6, + pyqtgraph)."""
