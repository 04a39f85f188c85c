"""One command line: the same spelling for the same thing in every subcommand, help text on
every subcommand, and one-line refusals (exit 2) instead of empty results or raw tracebacks."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daqapp import cli

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "daqapp"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub, helps.get(name)
                yield from _subparsers(sub, f"{prefix} {name}")


SUBPARSERS = list(_subparsers(cli.build_parser()))


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("name,parser,help_text", SUBPARSERS, ids=[s[0] for s in SUBPARSERS])
def test_every_subcommand_has_help_and_description(name, parser, help_text):
    assert help_text, f"{name}: no help line in its parent's list"
    assert parser.description, f"{name} --help has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("name,parser,help_text", SUBPARSERS, ids=[s[0] for s in SUBPARSERS])
def test_output_and_progress_options_have_both_spellings(name, parser, help_text):
    options = _options(parser)
    if "--output" in options:
        assert options.get("-o") is options["--output"], f"{name}: --output without -o"
    if "--no-progress" in options or "--quiet" in options and name != "daqapp report":
        assert options.get("--no-progress") is options.get("--quiet"), \
            f"{name}: --quiet and --no-progress must be the same switch"


def test_run_takes_o_and_quiet():
    args = cli.build_parser().parse_args(["run", "rt", "--simulate", "-o", "x", "--quiet"])
    assert args.output == Path("x") and args.no_progress


def test_unknown_procedure_is_named_without_output(capsys):
    assert cli.main(["run", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'nosuch' is unknown" in err[0] and "rt" in err[0] and "didv-lockin" in err[0]


def test_report_and_replay_models_are_the_fit_panels_list():
    from daqapp.analysis.fit import parse_model
    from daqapp.fitworker import MODELS

    parser = cli.build_parser()
    for command in (["report", "x"], ["replay", "x"]):
        for model in MODELS:
            parse_model(model)  # every offered model is one the analysis takes
            assert parser.parse_args([*command, "--model", model]).model == model


def test_simulate_controller_options_and_deprecated_aliases(capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["simulate", "--temperature-controller", "itc503",
                              "--magnet-supply", "ips120"])
    assert (args.temperature_controller, args.magnet_supply) == ("itc503", "ips120")
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["simulate", "--temperature", "itc503", "--magnet", "ips120"])
    assert (old.temperature_controller, old.magnet_supply) == ("itc503", "ips120")
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and all("deprecated" in w for w in warnings)
    default = parser.parse_args(["simulate"])
    assert (default.temperature_controller, default.magnet_supply) == ("ls336", "ami430")


def test_report_of_an_empty_folder_exits_2_with_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [f"daqapp report: error: no run files in {tmp_path}"]
    assert not (tmp_path / "report").exists()


def test_report_of_only_unreadable_files_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "broken.h5").write_bytes(b"not an HDF5 file")
    assert cli.main(["report", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no readable run files" in lines[0] and "broken.h5" in lines[0]


def test_parameter_message_shows_the_range_valid_on_the_station(capsys):
    for value in ("500", "350"):  # beyond the procedure's range, and only the station's
        assert cli.main(["run", "rt", "--simulate", "-o", "unused", "--set",
                         f"t_start={value}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "allowed range 1.5 to 320 K" in err[0], err


def test_effective_range_is_the_intersection():
    import procedures
    from daqapp.runner.procedure import effective_range
    from daqapp.station import Station

    rt = procedures.load("rt")()
    station = Station.simulated(preset="nb-foil")
    assert effective_range(rt, "t_start", None) == (0.0, 400.0, "K")
    assert effective_range(rt, "t_start", station.limits) == (1.5, 320.0, "K")


def test_pymeasure_parameter_error_is_one_line_naming_the_parameter():
    from pymeasure.experiment import ListParameter

    from daqapp.errors import ConfigError
    from daqapp.runner.procedure import check_parameter

    parameter = ListParameter("Spacing", choices=["linear", "log"], default="linear")
    with pytest.raises(ConfigError) as refused:
        check_parameter("spacing", parameter, "cubic")
    text = str(refused.value)
    assert "Invalid choice" not in text  # pymeasure's own wording
    assert text == "spacing = 'cubic': must be one of linear, log"


def test_integer_text_on_the_command_line_names_the_parameter(capsys):
    assert cli.main(["run", "rt", "--simulate", "-o", "unused", "--set",
                     "delta_count=abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "IntegerParameter" not in err[0]
    assert "delta_count = abc: must be a whole number" in err[0]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)


def test_virtual_lab_is_importable_from_the_package():
    done = _python("from simulators import VirtualLab; print(VirtualLab.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "VirtualLab"


def test_no_pymeasure_import_notices_on_stderr():
    # logging configured before pymeasure is imported (as `daqapp run` does): pymeasure would
    # print "ZMQ and cloudpickle are required ..." / "IPython could not be imported"
    done = _python("import logging, sys; logging.basicConfig(); "
                   "sys.modules.update(zmq=None, IPython=None); "
                   "from daqapp.cli import main; "
                   "import pymeasure.experiment, pymeasure.display.listeners; "
                   "sys.exit(main(['--help']))")
    assert done.returncode == 0, done.stderr
    assert "ZMQ" not in done.stderr and "IPython" not in done.stderr, done.stderr
    assert done.stderr == ""
