"""Campaign files: structure, expansion into steps, and errors that name the key."""

from __future__ import annotations

import pytest

from daqapp.campaign.spec import parse_campaign, with_estimates
from daqapp.errors import ConfigError


class FakeCatalog:
    """Two procedures with one range-checked parameter each, and known estimates."""

    def names(self):
        return ["spectrum", "rt"]

    def check(self, name, params):
        unknown = set(params) - {"points", "temperature"}
        if unknown:
            raise ConfigError(f"unknown parameter {sorted(unknown)[0]!r}")
        points = params.get("points", 10)
        if not 2 <= points <= 1000:
            raise ConfigError(f"points = {points} is outside the allowed range 2 to 1000")

    def estimate_s(self, name, params):
        return 2.0 * params.get("points", 10)


HEAD = """
[campaign]
name = "test"
[station]
simulated = true
preset = "nb-foil"
speed = 100
"""


def parse(body: str, catalog=None):
    return parse_campaign(HEAD + body, "/tmp/c.toml", catalog=catalog or FakeCatalog())


def test_loops_expand_field_outer_with_stable_keys():
    c = parse("""
[[step]]
name = "spectra"
procedure = "spectrum"
field_T = [0, 2]
temperature_K = {start = 3, stop = 7, step = 2}
params = {points = 50, temperature = "$temperature_K"}
""")
    got = [(s.field_T, s.temperature_K) for s in c.steps]
    assert got == [(0, 3), (0, 5), (0, 7), (2, 3), (2, 5), (2, 7)]
    assert [s.key for s in c.steps][:2] == ["001-spectra-0T-3K", "002-spectra-0T-5K"]
    assert c.steps[4].params == {"points": 50, "temperature": 5.0}
    assert len({s.key for s in c.steps}) == 6


def test_temperature_outer_order_and_points_range():
    c = parse("""
[[step]]
name = "rt"
procedure = "rt"
loop = "temperature-outer"
field_T = [0, 1]
temperature_K = {start = 10, stop = 20, points = 3}
""")
    assert [(s.temperature_K, s.field_T) for s in c.steps] == [
        (10, 0), (10, 1), (15, 0), (15, 1), (20, 0), (20, 1)]


def test_defaults_inherit_and_block_overrides():
    c = parse("""
[defaults]
stabilize = {band_K = 0.2, time_s = 10, timeout_s = 100}
on_fault = {retries = 3, then = "stop"}
[[step]]
name = "a"
procedure = "spectrum"
temperature_K = 5
[[step]]
name = "b"
procedure = "spectrum"
temperature_K = 6
stabilize = {band_K = 0.05}
on_fault = "skip"
""")
    a, b = c.steps
    assert (a.stabilize.band_K, a.stabilize.time_s, a.on_fault.retries, a.on_fault.then) == (
        0.2, 10, 3, "stop")
    assert (b.stabilize.band_K, b.stabilize.time_s, b.on_fault.retries, b.on_fault.then) == (
        0.05, 10, 0, "skip")


@pytest.mark.parametrize("body, where", [
    ('[[step]]\nname = "a"\nprocedure = "nope"\n', "step[0] (a).procedure"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\nparams = {points = 1}\n',
     "step[0] (a).params: points = 1 is outside"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\ntemperature_K = [3, 400]\n',
     "step[0] (a).temperature_K[1]: 400 K is outside the allowed range 1.5 to 320 K"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\nfield_T = 12\n',
     "field_T: 12 T is outside the allowed range -9 to 9 T"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\ntempreature_K = 3\n',
     "step[0] (a).tempreature_K: unknown key"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\ntemperature_mode = "ramp"\n'
     'temperature_K = 4\n', "ramp_K_per_min"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\non_fault = {then = "panic"}\n',
     "on_fault.then: 'panic' is not one of skip, stop"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\nparams = {temperature = "$field_T"}\n',
     "$field_T' used but the step sets no field_T"),
    ('[[step]]\nname = "a"\nprocedure = "spectrum"\n[[step]]\nname = "a"\n'
     'procedure = "rt"\n', "step[1].name: 'a' is used by an earlier step"),
    ('[[suspend]]\nkind = "temperature"\n[[step]]\nname = "a"\nprocedure = "rt"\n',
     "suspend[0].band_K"),
    ('[[step]]\nname = "a"\nprocedure = "rt"\n'
     'stabilize = {time_s = 100, timeout_s = 50}\n', "timeout_s: 50 s must exceed time_s"),
    ('', "step: a campaign needs at least one"),
])
def test_errors_name_the_key(body, where):
    with pytest.raises(ConfigError) as exc:
        parse(body)
    assert "/tmp/c.toml" in str(exc.value)
    assert where in str(exc.value)


def test_bad_toml_reports_line():
    with pytest.raises(ConfigError, match=r"invalid TOML.*line 2"):
        parse_campaign("[campaign]\nname = \n", "x.toml")


def test_station_needs_file_or_simulated(tmp_path):
    with pytest.raises(ConfigError, match=r"station: needs file"):
        parse_campaign('[campaign]\nname="x"\n[station]\n[[step]]\nname="a"\n'
                       'temperature_K=4\n', tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"station.file: .*does not exist"):
        parse_campaign('[campaign]\nname="x"\n[station]\nfile="st.toml"\n[[step]]\nname="a"\n'
                       'temperature_K=4\n', tmp_path / "c.toml")
    (tmp_path / "st.toml").write_text("")
    c = parse_campaign('[campaign]\nname="x"\n[station]\nfile="st.toml"\n[[step]]\nname="a"\n'
                       'temperature_K=4\n', tmp_path / "c.toml")
    assert c.station.file == tmp_path / "st.toml"


def test_estimates_include_ramps_settling_and_procedure():
    c = parse("""
[defaults]
field_ramp_T_per_min = 0.5
stabilize = {band_K = 0.1, time_s = 60, timeout_s = 600}
[[step]]
name = "a"
procedure = "spectrum"
field_T = 1
temperature_K = 10
temperature_mode = "ramp"
ramp_K_per_min = 2
params = {points = 100}
""")
    c = with_estimates(c, FakeCatalog())
    (step,) = c.steps
    # 1 T at 0.5 T/min = 120 s; first temperature assumes 10 K at 2 K/min = 300 s;
    # 60 s stable; 200 s procedure.
    assert step.estimate_s == pytest.approx(120 + 300 + 60 + 200)
    assert c.total_estimate_s == step.estimate_s
