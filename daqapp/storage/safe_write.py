"""Writing output files without following a symbolic link planted where the file will go.

A report or export folder may be shared, or hold files received from elsewhere; a symlink named
``summary.md`` or ``run.csv`` pointing at, say, ``~/.bashrc`` must not make daqapp overwrite its
target. ``open_output`` opens with ``O_NOFOLLOW`` and refuses a symlink with one line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any

from daqapp.errors import DataFileError


def open_output(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing ("w", "wb"), never through a symlink at ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output mode = {mode!r}; allowed: 'w', 'wb'")
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(p, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or p.is_symlink():
            raise DataFileError(f"{p}: is a symbolic link; refusing to write through it "
                                "(remove it, or choose another output)") from None
        raise DataFileError(f"{p}: cannot write ({exc.strerror or exc})") from None
    return os.fdopen(fd, mode, **kwargs)
