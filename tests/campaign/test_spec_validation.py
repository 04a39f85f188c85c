"""Campaign files refused at load (and so at --dry-run) for what used to fail at step 1.

NaN/inf/denormal numbers and procedure parameters, heater zones the station forbids, PID
gains that are not finite, step products too large to plan, and a step whose position its
procedure would undo: each is one line naming the file and key, before anything moves.
"""

from __future__ import annotations

import pytest

from daqapp import cli
from daqapp.campaign.catalog import ProcedureCatalog
from daqapp.campaign.spec import MAX_STEPS, parse_campaign
from daqapp.errors import ConfigError
from daqapp.station import Station
from daqapp.station import config as station_config

HEAD = """
[campaign]
name = "t"
[station]
simulated = true
preset = "nb-foil"
"""


@pytest.fixture(scope="module")
def catalog():
    # DC bias from the 6221: the Nb calibration's ±0.75 mA is beyond an AUX output
    return ProcedureCatalog(station=Station.simulated(
        preset="nb-foil", wiring={"dc_bias_source": "current_source"}))


def parse(body: str, catalog=None, limits=None):
    return parse_campaign(HEAD + body, "/tmp/c.toml", catalog=catalog, limits=limits)


class CountingCatalog:
    """Accepts everything and counts the checks (to see that nothing is expanded)."""

    def __init__(self):
        self.checks = 0

    def names(self):
        return ["spectrum"]

    def check(self, name, params):
        self.checks += 1

    def estimate_s(self, name, params):
        return 1.0


@pytest.mark.parametrize("body, needle", [
    ('[defaults]\nstabilize = {band_K = nan}\n[[step]]\nname = "a"\ntemperature_K = 5\n',
     "defaults.stabilize.band_K = nan: must be a finite number"),
    ('[defaults]\nstabilize = {time_s = 1e-320}\n[[step]]\nname = "a"\ntemperature_K = 5\n',
     "defaults.stabilize.time_s = 1e-320"),
    ('[[step]]\nname = "a"\ntemperature_K = [3, inf]\n', "temperature_K[1]"),
    ('[[step]]\nname = "a"\nfield_T = 1e-320\n', "field_T = 1e-320"),
    ('[[heater_zone]]\nbelow_K = 10\nrange = 1\npid = [nan, 1, 0]\n[[step]]\nname = "a"\n'
     'temperature_K = 5\n', "heater_zone[0].pid.P = nan: must be a finite number in [0, 1000]"),
    ('[[heater_zone]]\nbelow_K = 10\nrange = 1\npid = [50, inf, 0]\n[[step]]\nname = "a"\n'
     'temperature_K = 5\n', "heater_zone[0].pid.I = inf"),
    ('[[heater_zone]]\nbelow_K = 10\nrange = 1\npid = [50, 1, -1]\n[[step]]\nname = "a"\n'
     'temperature_K = 5\n', "heater_zone[0].pid.D = -1"),
])
def test_non_finite_numbers_are_refused_naming_the_key(body, needle):
    with pytest.raises(ConfigError) as caught:
        parse(body)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_heater_zone_range_must_be_allowed_by_the_station():
    body = '[[heater_zone]]\nbelow_K = 10\nrange = 3\n[[step]]\nname = "a"\ntemperature_K = 5\n'
    parse(body)  # no station limits given: only the structure is checked
    with pytest.raises(ConfigError, match=r"heater_zone\[0\]\.range: 3: the station allows "
                                          r"heater ranges 0, 1"):
        parse(body, limits={"heater_ranges_allowed": (0, 1)})


def test_dry_run_refuses_a_forbidden_zone_and_a_nan_pid(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(station_config.Station, "connect",
                        lambda *a, **k: pytest.fail("a dry run connected a station"))
    forbidden = tmp_path / "zone.toml"
    forbidden.write_text(HEAD + "[station.limits]\nheater_ranges_allowed = [0, 1]\n"
                         '[[heater_zone]]\nbelow_K = 10\nrange = 3\n'
                         '[[step]]\nname = "a"\ntemperature_K = 5\n')
    nan_pid = tmp_path / "pid.toml"
    nan_pid.write_text(HEAD + '[[heater_zone]]\nbelow_K = 10\nrange = 1\npid = [nan, 1, 0]\n'
                       '[[step]]\nname = "a"\ntemperature_K = 5\n')
    for path, needle in ((forbidden, "heater_zone[0].range: 3"),
                         (nan_pid, "heater_zone[0].pid.P = nan")):
        assert cli.main(["campaign", "run", str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pid.toml", "zone.toml"]


def test_a_step_product_beyond_the_limit_is_refused_before_expansion():
    counting = CountingCatalog()
    fields = ", ".join(["0"] * 3000)
    temps = ", ".join(["3"] * 3000)
    with pytest.raises(ConfigError, match=rf"3000 x 3000 steps: a campaign has at most "
                                          rf"{MAX_STEPS} steps"):
        parse(f'[[step]]\nname = "a"\nprocedure = "spectrum"\nfield_T = [{fields}]\n'
              f'temperature_K = [{temps}]\n', counting)
    assert counting.checks == 0  # refused from the list lengths, nothing built


def test_the_limit_counts_all_blocks_and_allows_exactly_the_maximum():
    counting = CountingCatalog()
    body = ('[[step]]\nname = "a"\nprocedure = "spectrum"\n'
            'field_T = {start = 0, stop = 0.99, points = 100}\n'
            'temperature_K = {start = 3, stop = 30, points = 100}\n')
    assert len(parse(body, counting).steps) == MAX_STEPS
    with pytest.raises(ConfigError, match=r"step\[1\] \(b\): .*after the 10000 steps before"):
        parse(body + '[[step]]\nname = "b"\ntemperature_K = 5\n', counting)


def test_procedure_parameters_are_validated_at_load(catalog):
    with pytest.raises(ConfigError, match=r"step\[0\] \(a\)\.params: didv-lockin parameter "
                                          r"settle_time = nan: must be"):
        parse('[[step]]\nname = "a"\nprocedure = "didv-lockin"\nparams = {settle_time = nan}\n',
              catalog)


def test_a_field_the_procedure_would_undo_is_refused_naming_both_values(catalog):
    body = '[[step]]\nname = "rt0"\nprocedure = "rt"\nfield_T = 1\n'
    with pytest.raises(ConfigError) as caught:
        parse(body, catalog)
    message = str(caught.value)
    assert "step[0] (rt0).field_T: field_T = 1 T but rt starts at fields = 0 T" in message
    ok = parse('[[step]]\nname = "rt0"\nprocedure = "rt"\nfield_T = [1, 2]\n'
               'params = {fields = "$field_T"}\n', catalog)
    assert [s.params["fields"] for s in ok.steps] == [1.0, 2.0]


@pytest.mark.parametrize("body, needle", [
    ('procedure = "nb-calibration"\ntemperature_K = 5\n',
     "temperature_K = 5 K but nb-calibration starts at temperature = 3 K"),
    ('procedure = "rt"\ntemperature_K = 50\nparams = {t_start = 90, t_stop = 2}\n',
     "temperature_K = 50 K but rt starts at t_start = 90 K"),
    ('procedure = "temperature-series"\ntemperature_K = 4\nparams = {temperatures = "3, 5"}\n',
     "starts at temperatures = 3 K"),
    ('procedure = "field-sweep"\nfield_T = 0.5\n', "starts at fields = 0 T"),
])
def test_other_positions_the_procedure_sets_itself(catalog, body, needle):
    with pytest.raises(ConfigError, match=needle):
        parse(f'[[step]]\nname = "s"\n{body}', catalog)


def test_positions_that_agree_or_that_the_procedure_leaves_alone_pass(catalog):
    c = parse('[[step]]\nname = "a"\nprocedure = "temperature-series"\ntemperature_K = 3\n'
              'params = {temperatures = "3, 5"}\n'
              '[[step]]\nname = "b"\nprocedure = "didv-lockin"\nfield_T = 1\n'
              'temperature_K = [3, 5]\n', catalog)
    assert len(c.steps) == 3


def test_a_registered_procedure_that_fails_to_import_is_named_with_its_error(monkeypatch):
    """A broken module is reported as broken (its import error), not as an unknown name, and
    the other procedures stay usable."""
    import procedures

    monkeypatch.setitem(procedures.PROCEDURES, "broken-rt", "no_such_daqapp_module:RT")
    catalog = ProcedureCatalog()
    assert "broken-rt" not in catalog.names() and "iv" in catalog.names()
    body = '[[step]]\nname = "s"\nprocedure = "broken-rt"\n'
    with pytest.raises(ConfigError, match=r"step\[0\] \(s\)\.procedure: procedure 'broken-rt' "
                       r"cannot be loaded \(ModuleNotFoundError: No module named "
                       r"'no_such_daqapp_module'\)"):
        parse(body, catalog)
    with pytest.raises(ConfigError, match="unknown procedure 'no-such'"):
        catalog.resolve("no-such")
