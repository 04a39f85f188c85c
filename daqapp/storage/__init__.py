"""HDF5 run files: writer thread (SWMR), reader, run listing, text import and export."""
