"""Numeric command-line input: every option through one number rule, refused in one line.

``daqapp run --set`` values go through the procedures' validator before any connection;
every numeric option of every command goes through ``commands/_types.py`` (checked by
walking the real parser, so a new ``type=float`` option fails here).
"""

from __future__ import annotations

import argparse
import math

import pytest

from daqapp import cli
from daqapp.commands._types import finite_float, whole_number
from daqapp.station import config as station_config


def all_actions(parser: argparse.ArgumentParser, prog: str = "daqapp"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_actions(sub, f"{prog} {name}")
        else:
            yield prog, action


def test_no_numeric_option_uses_bare_float_or_int():
    bare = [f"{prog} {'/'.join(action.option_strings)}"
            for prog, action in all_actions(cli.build_parser())
            if action.type in (float, int)]
    assert bare == []


def numeric_options():
    found = []
    for prog, action in all_actions(cli.build_parser()):
        name = getattr(action.type, "__name__", "")
        if action.option_strings and name in ("number", "whole number"):
            found.append((prog.split()[1:], action.option_strings[-1], action.nargs))
    return found


NUMERIC = numeric_options()


def test_the_reported_options_are_covered():
    names = {(tuple(words), option) for words, option, _ in NUMERIC}
    for expected in [(("report",), "--series-resistance"), (("report",), "--max-bias"),
                     (("report",), "--hc2-eta"), (("fit",), "--sigma"), (("run",), "--speed"),
                     (("run",), "--seed"), (("demo",), "--speed"), (("simulate",), "--seed"),
                     (("gui",), "--monitor-interval"), (("fit",), "--bias-window")]:
        assert expected in names, expected


@pytest.mark.parametrize("words, option, nargs", NUMERIC,
                         ids=[f"{' '.join(w)} {o}" for w, o, _ in NUMERIC])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e-320", "abc"])
def test_every_numeric_option_refuses_non_numbers_in_one_line(capsys, words, option, nargs,
                                                              bad):
    if isinstance(nargs, int):  # "-inf" alone would read as an option
        given = [option, *([bad if not bad.startswith("-") else "nan"] * nargs)]
        bad = given[1]
    else:
        given = [f"{option}={bad}"]
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args([*words, *given])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{option} = {bad}: must be a" in err[0]


@pytest.mark.parametrize("argv, needle", [
    (["fit", "x.csv", "--sigma", "nan"], "fit: error: --sigma = nan: must be a finite number > 0"),
    (["fit", "x.csv", "--sigma", "0"], "--sigma = 0: must be a finite number > 0"),
    (["fit", "x.csv", "--sigma=-1"], "--sigma = -1: must be a finite number > 0"),
    (["report", "d", "--series-resistance", "nan"], "--series-resistance = nan: must be a "
                                                    "finite number in [0, 1e+06] Ohm"),
    (["report", "d", "--max-bias", "nan"], "--max-bias = nan"),
    (["report", "d", "--hc2-eta", "inf"], "--hc2-eta = inf: must be a finite number in (0, "),
    (["run", "--simulate", "--speed", "nan", "--list"], "--speed = nan"),
    (["run", "--simulate", "--seed", "1.5", "--list"], "--seed = 1.5: must be a whole number"),
    (["runs", "show", "f.h5", "--log-lines=-3"], "--log-lines = -3: must be a whole number"),
    (["run", "--bogus"], "unrecognized arguments: --bogus (see daqapp --help)"),
])
def test_reported_values_exit_2_naming_the_option(capsys, argv, needle):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_types_convert_good_text():
    assert finite_float(0, low_open=True)("0.5") == 0.5
    assert finite_float(0, 1e6, "Ohm")("0") == 0.0
    assert whole_number(0, 10)("7") == 7 and whole_number(0, 10)("7.0") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"2\.5: must be a whole number in "
                                                         r"\[0, 10\]"):
        whole_number(0, 10)("2.5")
    assert math.isfinite(finite_float()("-1e300"))


@pytest.fixture
def no_connection(monkeypatch):
    """Fail the test if anything connects to a station (the lab or instruments)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a station was connected")

    monkeypatch.setattr(station_config.Station, "connect", refuse)


@pytest.mark.parametrize("procedure, assignment, key", [
    ("didv-lockin", "settle_time=nan", "settle_time"),
    ("didv-lockin", "settle_time=1e-320", "settle_time"),
    ("didv-lockin", "time_constant=1e-320", "time_constant"),
    ("rt", "hold_time=nan", "hold_time"),
    ("rt", "band=nan", "band"),
    ("rt", "t_step=nan", "t_step"),
    ("rt", "fields=0:nan:1", "fields"),
    ("iv", "nplc=nan", "nplc"),
    ("iv", "settle=inf", "settle"),
    ("iv", "points=2.5", "points"),
])
def test_run_set_refuses_before_any_connection(capsys, tmp_path, no_connection, procedure,
                                               assignment, key):
    output = tmp_path / "runs"
    code = cli.main(["run", procedure, "--simulate", "--set", assignment, "--output",
                     str(output)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{procedure} parameter {key} = " in err[0]
    assert not output.exists()  # no file, no folder
