"""Every registered driver implements the protocol of each role it claims to fill."""

import inspect

import pytest

from drivers import roles
from drivers.registry import DRIVERS, ROLES, drivers_for_role

PROTOCOLS = {"lockin": roles.LockIn, "current_source": roles.CurrentSource,
             "nanovoltmeter": roles.Nanovoltmeter, "temperature": roles.TemperatureController,
             "magnet": roles.MagnetSupply}


def protocol_methods(protocol):
    names = set()
    for klass in protocol.__mro__:
        if klass in (object,) or not getattr(klass, "_is_protocol", False):
            continue
        names |= {n for n, v in vars(klass).items()
                  if callable(v) and not n.startswith("_")}
    return names


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_adapter_has_every_role_method(name):
    spec = DRIVERS[name]
    for role in spec.roles:
        missing = [m for m in protocol_methods(PROTOCOLS[role])
                   if not callable(getattr(spec.adapter_for(role), m, None))]
        assert missing == [], f"{name} lacks {missing} for role {role}"
    for extra in ("state_line", "close", "identify", "snapshot", "to_safe_state"):
        assert callable(getattr(spec.adapter, extra))


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_options_are_constructor_arguments(name):
    spec = DRIVERS[name]
    params = set().union(*(inspect.signature(spec.adapter_for(role).__init__).parameters
                           for role in spec.roles))
    assert set(spec.options) <= params, f"{name}: options not accepted by the adapter"


def test_every_role_has_a_driver_and_both_swappable_roles_have_two():
    assert all(drivers_for_role(role) for role in ROLES)
    assert {"ITC503", "LakeShore336", "MercuryiTC", "PPMS"} <= set(
        drivers_for_role("temperature"))
    assert {"AMI430", "IPS120_10", "MercuryiPS", "PPMS"} <= set(drivers_for_role("magnet"))
