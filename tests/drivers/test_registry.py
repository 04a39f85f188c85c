"""Every registered driver implements the protocol of each role it claims to fill, and the
registry's checks name what a would-be adapter lacks."""

import inspect

import pytest

from daqapp.errors import ConfigError
from drivers.base import RoleAdapter
from drivers.registry import (
    BUILTIN_DRIVERS,
    DRIVERS,
    ROLE_PROTOCOLS,
    ROLES,
    DriverSpec,
    adapter_problems,
    drivers_for_role,
    protocol_methods,
    resolve_driver,
    spec_from_adapter,
)


@pytest.mark.parametrize("name", sorted(BUILTIN_DRIVERS))
def test_adapter_has_every_role_method(name):
    spec = DRIVERS[name]
    for role in spec.roles:
        missing = [m for m in protocol_methods(ROLE_PROTOCOLS[role])
                   if not callable(getattr(spec.adapter_for(role), m, None))]
        assert missing == [], f"{name} lacks {missing} for role {role}"
    for extra in ("state_line", "close", "identify", "snapshot", "to_safe_state"):
        assert callable(getattr(spec.adapter, extra))
    if spec.role_adapters:  # one adapter per role (a PPMS): each fills its own role; the
        for role in spec.roles:  # options are checked against their union below
            assert adapter_problems(spec.adapter_for(role), (role,)) == []
    else:
        assert adapter_problems(spec.adapter, spec.roles, spec.options) == []


@pytest.mark.parametrize("name", sorted(BUILTIN_DRIVERS))
def test_driver_options_are_constructor_arguments(name):
    spec = DRIVERS[name]
    params = set().union(*(inspect.signature(spec.adapter_for(role).__init__).parameters
                           for role in spec.roles))
    assert set(spec.options) <= params, f"{name}: options not accepted by the adapter"


def test_every_role_has_a_driver_and_the_swappable_roles_have_their_models():
    assert all(drivers_for_role(role) for role in ROLES)
    assert {"ITC503", "LakeShore335", "LakeShore336", "LakeShore340", "LakeShore350",
            "MercuryiTC", "PPMS"} <= set(drivers_for_role("temperature"))
    assert {"AMI430", "IPS120_10", "LakeShore625", "MercuryiPS", "PPMS"} <= set(
        drivers_for_role("magnet"))
    assert {"SR830", "SR860", "SR865"} <= set(drivers_for_role("lockin"))
    assert {"Keithley6221", "Keithley6220"} <= set(drivers_for_role("current_source"))


def test_only_the_6221_offers_dcon():
    assert "dcon" in DRIVERS["Keithley6221"].capabilities
    assert "dcon" not in DRIVERS["Keithley6220"].capabilities
    assert "delta" in DRIVERS["Keithley6220"].capabilities


class HalfAMagnet(RoleAdapter):
    """Fills the magnet role badly: no field() and no limits in its constructor."""

    def __init__(self, instrument, resource=""):
        super().__init__(instrument, resource)

    def ramp_to(self, tesla, rate):
        pass


def test_a_class_missing_role_methods_is_named_with_what_it_lacks():
    problems = adapter_problems(HalfAMagnet, ("magnet",))
    assert any("lacks" in p and "field" in p and "is_quenched" in p for p in problems)
    assert any("does not accept" in p and "max_field_t" in p for p in problems)
    assert any("has no driver_class" in p for p in problems)
    assert adapter_problems(HalfAMagnet, ("cryostat",))[0].startswith("roles ['cryostat']")
    assert adapter_problems(42, ("magnet",)) == ["42 is not a class"]


def test_an_adapter_describes_itself_and_its_roles_are_inferred():
    spec = spec_from_adapter("Copy336", BUILTIN_DRIVERS["LakeShore336"].adapter, "test")
    assert spec.roles == ("temperature",)
    assert spec.read_termination == "\n"   # not declared on the class: the default
    assert spec.origin == "test"
    assert isinstance(spec, DriverSpec)


def test_module_class_names_resolve_and_bad_ones_say_why():
    spec = resolve_driver("drivers.sr860:SR860LockIn")
    assert spec.roles == ("lockin",) and "station file" in spec.origin
    with pytest.raises(ConfigError, match="cannot import no_such_package"):
        resolve_driver("no_such_package.module:Adapter")
    with pytest.raises(ConfigError, match="drivers.sr860 has no Nothing"):
        resolve_driver("drivers.sr860:Nothing")
    with pytest.raises(ConfigError, match="SR860 implements no role's protocol"):
        resolve_driver("drivers.sr860:SR860")      # the driver, not an adapter
    with pytest.raises(ConfigError, match="unknown driver 'NoSuch'"):
        resolve_driver("NoSuch")
