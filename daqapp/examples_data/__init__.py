"""The campaign files ``daqapp demo`` runs, shipped as package data.

They live inside the package (not in the checkout's ``examples/``) so a plain ``pip install``
finds them through :mod:`importlib.resources`; copy one and edit it to plan your own campaign.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

#: The campaign files this folder holds (``daqapp demo`` runs them).
CAMPAIGNS = ("la3ni2o7.toml", "nb-calibration.toml", "quick.toml")


def example_campaign(name: str) -> Traversable:
    """The packaged campaign file ``name`` (one of :data:`CAMPAIGNS`)."""
    if name not in CAMPAIGNS:
        from daqapp.errors import ConfigError

        raise ConfigError(f"example campaign {name!r} is unknown (allowed: "
                          f"{', '.join(CAMPAIGNS)})")
    return files(__name__) / name
