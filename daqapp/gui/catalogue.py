"""The procedures an operator may queue, and the line that describes each."""

from __future__ import annotations


def discover_procedures() -> dict[str, type]:
    """``{name: class}`` of the procedures an operator can queue: the same list, under the same
    names, as the command line and campaign files (built-ins and ``daqapp.procedures``
    plug-ins; one that fails to load is logged and left out)."""
    from daqapp.campaign.catalog import discover_procedures as discover

    return discover()


def summary(procedure_class: type) -> str:
    """One line about the procedure: its SUMMARY, else the first docstring line."""
    text = getattr(procedure_class, "SUMMARY", "") or (procedure_class.__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""
