"""--station / --simulate mean the same in every command; bad combinations are named."""

import argparse

import pytest

from daqapp.commands._station_options import (
    add_station_options,
    parse_pairs,
    station_from_options,
)
from daqapp.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_station_options(parser, default_speed=7.0)
    return parser.parse_args(list(argv))


def test_simulate_builds_a_simulated_station_with_typed_wiring():
    args = parse("--simulate", "--preset", "nb-foil", "--wiring", "bias_resistor_ohm=1e4",
                 "--wiring", "bias_aux_channel=2", "--wiring", "dc_bias_source=current_source")
    station = station_from_options(args)
    assert station.simulation.preset == "nb-foil" and station.simulation.speed == 7.0
    assert station.wiring.bias_resistor_ohm == 1e4
    assert station.wiring.bias_aux_channel == 2
    assert station.wiring.dc_bias_source == "current_source"


@pytest.mark.parametrize("argv, message", [
    ((), "give --station FILE or --simulate"),
    (("--simulate", "--wiring", "bias_aux_channel=one"), "bias_aux_channel=one: expected a whole"),
    (("--simulate", "--wiring", "bias_resistor_ohm"), "expected NAME=VALUE"),
    (("--station", "x.toml", "--wiring", "bias_resistor_ohm=1"), "--wiring is for --simulate"),
])
def test_bad_combinations_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        station_from_options(parse(*argv))


def test_station_and_simulate_exclude_each_other():
    with pytest.raises(SystemExit):
        parse("--station", "x.toml", "--simulate")


def test_pairs_keep_values_with_equals_signs():
    assert parse_pairs("--meta", ["sample=La3Ni2O7 cell=2", " op = ab "]) == {
        "sample": "La3Ni2O7 cell=2", "op": "ab"}
