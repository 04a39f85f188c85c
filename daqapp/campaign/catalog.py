"""The procedures a campaign may name, found in the ``procedures`` package.

A campaign names a procedure by a short key (``lockin_spectrum``, ``rt_delta``) or by its class
name. The catalog builds instances with the file's parameters (pymeasure validates each value
against its Parameter), checks them without touching an instrument, and asks each for its time
estimate, so a dry run costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import pkgutil
import re
from collections.abc import Mapping
from typing import Any

from daqapp.errors import ConfigError

log = logging.getLogger(__name__)


def _snake(name: str) -> str:
    name = re.sub(r"Procedure$", "", name)
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name)
    return name.lower()


#: name -> why it cannot be loaded, for the registered procedures the last
#: :func:`discover_procedures` could not import (a broken module must be named as broken, not
#: reported as an unknown name).
LOAD_ERRORS: dict[str, str] = {}


def discover_procedures() -> dict[str, type]:
    """Short key -> Procedure class for every concrete procedure in ``procedures``: the
    built-ins and the ``daqapp.procedures`` plug-ins — the one list the command line, campaign
    files and the window use.

    The key is the class's ``NAME`` attribute if it has one, else its name in snake case
    without the ``Procedure`` suffix; the class name itself is accepted too. A registered
    procedure that fails to load is logged and left out, its reason kept in
    :data:`LOAD_ERRORS`, so the others stay usable.
    """
    import procedures as package
    from daqapp.runner.procedure import ControlledProcedure

    found: dict[str, type] = {}
    LOAD_ERRORS.clear()
    available = getattr(package, "available", None)
    registry = (available() if callable(available) else None) or getattr(
        package, "PROCEDURES", None) or getattr(package, "REGISTRY", None)
    if isinstance(registry, Mapping):
        for key, target in registry.items():
            if isinstance(target, type):
                found[str(key)] = target
                continue
            try:
                found[str(key)] = package.load(str(key))
            except (ImportError, AttributeError, ConfigError) as exc:
                LOAD_ERRORS[str(key)] = str(exc)
                log.warning("procedure %s cannot be loaded: %s", key, exc)
                continue
    if found:
        return found
    known: set[type] = set()
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, ControlledProcedure) and cls is not ControlledProcedure
                    and cls.__module__ == module.__name__ and not inspect.isabstract(cls)
                    and not cls.__name__.startswith("_")):
                if cls in known:
                    continue
                key = getattr(cls, "NAME", None) or _snake(cls.__name__)
                found.setdefault(str(key), cls)
    return found


class ProcedureCatalog:
    """Names, parameter checks, time estimates and construction of procedures."""

    def __init__(self, classes: Mapping[str, type] | None = None,
                 station: Any = None) -> None:
        self.classes: dict[str, type] = dict(classes) if classes is not None \
            else discover_procedures()
        #: The (unconnected) station checks and estimates are made against: its wiring and
        #: limits decide what a parameter may be, before anything is connected.
        self.station = station
        self._by_class = {cls.__name__: cls for cls in self.classes.values()}

    def names(self) -> list[str]:
        return sorted(self.classes)

    def resolve(self, name: str) -> type:
        cls = self.classes.get(name) or self._by_class.get(name)
        if cls is None:
            raise ConfigError(self.why_missing(name))
        return cls

    def why_missing(self, name: str) -> str:
        """The one line for a procedure name this catalog cannot give: its load error if it
        is registered but broken, else the known names."""
        if name in LOAD_ERRORS and name not in self.classes:
            return LOAD_ERRORS[name]
        return f"unknown procedure {name!r}; known: {', '.join(self.names())}"

    def __contains__(self, name: str) -> bool:
        return name in self.classes or name in self._by_class

    def parameter_names(self, name: str) -> list[str]:
        cls = self.resolve(name)
        proc = cls()
        return sorted(proc.parameter_objects())

    def build(self, name: str, params: Mapping[str, Any], station: Any = None) -> Any:
        """A procedure instance with ``params`` set and validated (no instrument touched)."""
        cls = self.resolve(name)
        station = self.station if station is None else station
        proc = cls()
        proc.station = station
        allowed = proc.parameter_objects()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"{unknown[0]!r} is not a parameter of {name} "
                              f"(parameters: {', '.join(sorted(allowed))})")
        for key, value in params.items():
            setattr(proc, key, value)
        from daqapp.runner.procedure import validate_parameters

        validate_parameters(proc, station, name=name)
        return proc

    def check(self, name: str, params: Mapping[str, Any]) -> None:
        self.build(name, params)

    def starting_point(self, name: str, params: Mapping[str, Any]
                       ) -> dict[str, tuple[str, float]]:
        """Where the procedure itself puts the station first (``ControlledProcedure.
        starting_point``), for the campaign to compare with the step's position."""
        start = getattr(self.build(name, params), "starting_point", None)
        return dict(start()) if callable(start) else {}

    def estimate_s(self, name: str, params: Mapping[str, Any]) -> float:
        proc = self.build(name, params)
        try:
            value = float(proc.estimate_duration())
        except Exception:  # noqa: BLE001 - an estimate must never stop a campaign
            return 0.0
        return value if math.isfinite(value) and value > 0 else 0.0

    def describe(self) -> list[tuple[str, str]]:
        """(key, one-line summary) for ``daqapp campaign procedures``."""
        out = []
        for key in self.names():
            cls = self.classes[key]
            doc = getattr(cls, "SUMMARY", "") or (inspect.getdoc(cls) or "").split("\n")[0]
            out.append((key, doc))
        return out
