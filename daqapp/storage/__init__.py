"""HDF5 run files: writer thread (SWMR), reader, run listing, text import and export.

``RunWriter`` streams records into a run file; ``open_run``/``list_runs`` read them back (also
while they grow); ``RunBuffer`` holds the same record stream in memory for plots and fits;
``load_spectra`` turns a run or a text file into spectra for fitting; ``to_xarray`` gives a run
as an ``xarray.Dataset`` (optional extra) and ``export_netcdf`` writes it as netCDF.
"""

from daqapp.storage.buffer import RunBuffer
from daqapp.storage.fits import append_fit
from daqapp.storage.netcdf import export_netcdf, to_xarray
from daqapp.storage.reader import LogEntry, RunReader, RunSummary, Sweep, list_runs, open_run
from daqapp.storage.spectra import SpectrumData, load_spectra
from daqapp.storage.textio import export_csv, read_table
from daqapp.storage.writer import RunWriter

__all__ = ["RunBuffer", "RunWriter", "RunReader", "RunSummary", "Sweep", "LogEntry",
           "open_run", "list_runs", "append_fit", "SpectrumData", "load_spectra", "export_csv",
           "read_table", "to_xarray", "export_netcdf"]
