"""daqapp: point-contact Andreev reflection and transport measurements, virtual lab and analysis."""

__version__ = "0.1.0"
