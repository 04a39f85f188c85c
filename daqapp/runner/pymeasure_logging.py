"""Silence pymeasure's import-time warnings about optional packages daqapp does not use.

pymeasure logs "ZMQ and cloudpickle are required for TCP communication" and "IPython could not
be imported" when its experiment package is imported. daqapp keeps records in-process and has
no notebook mode, so those lines only clutter one-line command-line errors. Importing this
module before pymeasure installs a filter for exactly those two messages.
"""

from __future__ import annotations

import logging

_NOISE = ("ZMQ and cloudpickle", "IPython could not be imported")
_LOGGERS = ("pymeasure.experiment.listeners", "pymeasure.experiment.workers",
            "pymeasure.experiment.experiment", "pymeasure.display.manager")


def _keep(record: logging.LogRecord) -> bool:
    text = str(record.msg)
    return not any(noise in text for noise in _NOISE)


for _name in _LOGGERS:
    logging.getLogger(_name).addFilter(_keep)
