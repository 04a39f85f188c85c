"""The command line's contract: help lists subcommands, user errors are one line and exit 2."""

import subprocess
import sys

import pytest

from daqapp import cli
from daqapp.errors import LimitError, check_range


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    parser = cli.build_parser()
    names = parser._subparsers._group_actions[0].choices.keys()  # noqa: SLF001
    for name in names:
        assert name in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: daqapp" in capsys.readouterr().out


def test_check_range_names_parameter_and_range():
    assert check_range("bias_current", 1e-6, 0, 1e-3, "A") == 1e-6
    with pytest.raises(LimitError, match=r"bias_current = 0.002 A is outside .* 0 to 0.001 A"):
        check_range("bias_current", 2e-3, 0, 1e-3, "A")
    with pytest.raises(LimitError, match="outside"):
        check_range("x", float("nan"), 0, 1)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "daqapp.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "daqapp" in out
