"""The procedures an operator may queue: every runnable procedure class in ``procedures/``."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

log = logging.getLogger(__name__)


def discover_procedures(package: str = "procedures") -> dict[str, type]:
    """``{name: class}`` of the procedures an operator can queue.

    The names are those of the package's registry (``procedures.PROCEDURES``, the names the
    command line and campaign files use); without a registry, every concrete
    ControlledProcedure subclass found in the package, by class name. A procedure that fails
    to import is logged and skipped, so one broken module does not take the window down.
    """
    from daqapp.runner import ControlledProcedure

    registry = _registry(package)
    if registry:
        return registry

    try:
        root = importlib.import_module(package)
    except ImportError as exc:
        log.warning("no procedures package %r: %s", package, exc)
        return {}
    found: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except Exception as exc:  # noqa: BLE001 - show the others
            log.warning("procedure module %s.%s failed to import: %s", package, info.name, exc)
            continue
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, ControlledProcedure)
                    and obj is not ControlledProcedure and obj.__module__ == module.__name__
                    and obj.COLUMNS and not inspect.isabstract(obj)
                    and not name.startswith("_")):
                found[name] = obj
    return found


def summary(procedure_class: type) -> str:
    """One line about the procedure: its SUMMARY, else the first docstring line."""
    text = getattr(procedure_class, "SUMMARY", "") or (procedure_class.__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""


def _registry(package: str) -> dict[str, type]:
    try:
        root = importlib.import_module(package)
    except ImportError:
        return {}
    names = getattr(root, "PROCEDURES", None)
    load = getattr(root, "load", None)
    if not isinstance(names, dict) or not callable(load):
        return {}
    found: dict[str, type] = {}
    for name in names:
        try:
            found[name] = load(name)
        except Exception as exc:  # noqa: BLE001 - show the others
            log.warning("procedure %s cannot be loaded: %s", name, exc)
    return found
