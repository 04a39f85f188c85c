"""The safe state under every ending and fault, checked at the emulators' side.

Procedures {lock-in spectrum with the AUX DC bias, lock-in spectrum biased from the 6221, R–T
ramp, I–V} × endings {finish, stop, abort, an exception in the procedure, SIGTERM} and × faults
in one instrument {lock-in not replying, lock-in link dropped, 6221 not replying, temperature
controller not replying, magnet not replying}. Before each run the heater and the magnet are
put somewhere unsafe (setpoint 20 K on range 2, magnet ramping to 0.3 T), so the safe state
has real work: the station says heater 10 K on range 0 and magnet to zero.

Each case asserts at the emulators (not through the drivers): 6221 output off at 0 A, SLVL at
its 4 mV minimum, AUX outputs 0 V, heater range 0 at 10 K with no ramp, magnet zeroing or at
zero — or, for an instrument that truly cannot be reached, that the stored verdict says NOT
CONFIRMED for exactly that role while every other role is confirmed and safe, and the run does
not end "finished". The SIGTERM cases run ``python -m daqapp.cli run`` in a subprocess that
writes the emulators' final state to a file (the lab lives in that process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from daqapp.runner import Run, events
from daqapp.station import Station
from daqapp.storage import open_run
from procedures.iv import CriticalCurrentIV
from procedures.lockin_spectrum import DifferentialConductanceLockIn
from procedures.rt import ResistanceTemperature

ROOT = Path(__file__).resolve().parents[2]
SPEED = 2000.0
SAFE_SETPOINT_K = 10.0
#: VISA timeout of every role in these tests: a silent instrument costs 0.5 s per query.
ROLE_TIMEOUT_S = 0.5
SAFE_TABLE = {"magnet": "zero", "heater_setpoint_k": SAFE_SETPOINT_K, "heater_range": 0}
DRIVERS = {"lockin": "SR830", "current_source": "Keithley6221", "nanovoltmeter": "Keithley2182",
           "temperature": "LakeShore336", "magnet": "AMI430"}

PROCEDURES: dict[str, dict[str, Any]] = {
    "lockin-aux": {
        "wiring": {},
        "make": lambda: DifferentialConductanceLockIn(points=41, directions="up"),
        "cli": ("didv-lockin", ["points=41", "directions=up_down"]),
    },
    "lockin-6221": {
        "wiring": {"dc_bias_source": "current_source"},
        "make": lambda: DifferentialConductanceLockIn(points=41, directions="up"),
        "cli": ("didv-lockin", ["points=41", "directions=up_down"]),
    },
    "rt": {
        "wiring": {},
        "make": lambda: ResistanceTemperature(t_start=3.0, t_stop=6.0, ramp_rate=10.0,
                                              interval=1.0, fields="0", hold_time=1.0),
        "cli": ("rt", ["t_start=3", "t_stop=30", "ramp_rate=5", "interval=1", "fields=0.3",
                       "hold_time=1", "field_rate=0.5"]),
    },
    "iv": {
        "wiring": {},
        "make": lambda: CriticalCurrentIV(current_max=2e-3, points=41, directions="up"),
        "cli": ("iv", ["current_max=0.004", "points=2001", "directions=up_down"]),
    },
}
#: fault name -> (role, fault kind, stays on?) ; a dropped link comes back at once.
FAULTS = {
    "lockin-silent": ("lockin", "no_reply", True),
    "lockin-dropped": ("lockin", "drop", False),
    "source-silent": ("current_source", "no_reply", True),
    "temperature-silent": ("temperature", "no_reply", True),
    "magnet-silent": ("magnet", "no_reply", True),
}
ENDINGS = ("finish", "stop", "abort", "exception")


class ProcedureBug(RuntimeError):
    """What an exception in a procedure looks like here."""


def emulator_state(lab: Any) -> dict[str, Any]:
    """What the emulated instruments hold, read from the emulator objects themselves."""
    source, lockin = lab.emulators["current_source"], lab.emulators["lockin"]
    heater = lab.emulators["temperature"].outputs[1]
    return {"source_output": bool(source.output), "source_level": float(source.level),
            "slvl": float(lockin.slvl), "aux": [float(v) for v in lockin.aux_out],
            "heater_range": int(heater.range), "setpoint": float(heater.setpoint),
            "ramp_on": bool(heater.ramp_on), "magnet_mode": str(lab.magnet.mode)}


def unsafe_roles(state: dict[str, Any]) -> set[str]:
    """The roles the emulators show not in the station's safe state."""
    bad = set()
    if state["source_output"] or state["source_level"] != 0.0:
        bad.add("current_source")
    if abs(state["slvl"] - 0.004) > 1e-6 or any(v != 0.0 for v in state["aux"]):
        bad.add("lockin")
    if (state["heater_range"] != 0 or abs(state["setpoint"] - SAFE_SETPOINT_K) > 1e-6
            or state["ramp_on"]):
        bad.add("temperature")
    if state["magnet_mode"] not in ("zeroing", "at_zero"):
        bad.add("magnet")
    return bad


def station_tables(wiring: dict[str, Any]) -> dict[str, Any]:
    tables: dict[str, Any] = {role: {"driver": driver, "timeout_s": ROLE_TIMEOUT_S}
                              for role, driver in DRIVERS.items()}
    tables.update(safe_state=SAFE_TABLE, wiring=dict(wiring))
    return tables


def make_unsafe(conn: Any) -> None:
    """Heater on range 2 at 20 K, magnet ramping away: the safe state must undo both."""
    conn.temperature.set_setpoint(20.0)
    conn.temperature.set_heater_range(2)
    conn.magnet.ramp_to(0.3, 0.5)


def run_case(procedure_key: str, tmp_path: Path, ending: str = "finish",
             fault: str | None = None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """One run; returns (result, the stored verdict, the emulators' state after it)."""
    spec = PROCEDURES[procedure_key]
    config = Station.simulated(speed=SPEED, seed=5, **station_tables(spec["wiring"]))
    with config.connect() as conn:
        make_unsafe(conn)
        procedure = spec["make"]()
        run = Run(procedure, station=conn, output_dir=tmp_path)
        trigger_rows = 3

        def on_event(event: Any) -> None:
            if event.kind != events.RECORD or run.rows != trigger_rows:
                return
            if ending == "stop":
                run.control.stop()
            elif ending == "abort":
                run.control.abort()
            elif ending == "exception":
                raise_in_procedure.append(True)
            if fault is not None:
                role, kind, stays = FAULTS[fault]
                conn.lab.faults.set(role, kind)
                if not stays:
                    conn.lab.faults.clear(role, kind)

        raise_in_procedure: list[bool] = []
        if ending == "exception":
            original = procedure.record

            def record(*args: Any, **kwargs: Any) -> Any:
                if raise_in_procedure:
                    raise ProcedureBug("procedure bug on purpose")
                return original(*args, **kwargs)

            procedure.record = record
        run.subscribe(on_event)
        result = run.execute()
        conn.lab.faults.clear_all()
        state = emulator_state(conn.lab)
    with open_run(result.path) as stored:
        verdict = stored.snapshots["end"]["safe_state_report"]
        assert stored.status == {"stopped": "finished"}.get(result.status, result.status)
    return result, verdict, state


def confirmed_roles(verdict: dict[str, Any]) -> dict[str, bool]:
    return {entry["role"]: entry["confirmed"] for entry in verdict["roles"]}


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("procedure_key", list(PROCEDURES))
def test_every_ending_leaves_every_instrument_safe(procedure_key, ending, tmp_path):
    result, verdict, state = run_case(procedure_key, tmp_path, ending=ending)
    assert unsafe_roles(state) == set(), state
    assert verdict["confirmed"] is True, verdict["summary"]
    assert set(confirmed_roles(verdict)) == set(DRIVERS)
    expected = {"finish": events.FINISHED, "stop": events.STOPPED, "abort": events.ABORTED,
                "exception": events.FAILED}[ending]
    assert result.status == expected, result.error
    assert result.safe_state.startswith("safe state confirmed")
    if ending == "exception":
        assert "procedure bug on purpose" in result.error


@pytest.mark.slow  # a silent instrument costs its timeouts: ~2.5 s a case, ~45 s in all
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("procedure_key", list(PROCEDURES))
def test_one_faulty_instrument_never_leaves_the_others_unsafe(procedure_key, fault, tmp_path):
    role, kind, stays = FAULTS[fault]
    result, verdict, state = run_case(procedure_key, tmp_path, fault=fault)
    confirmed = confirmed_roles(verdict)
    if stays:  # unreachable: exactly that role is not confirmed, the run is not a success
        assert confirmed.pop(role) is False
        line = next(e["line"] for e in verdict["roles"] if e["role"] == role)
        assert "NOT CONFIRMED" in line and line.endswith("check by hand")
        assert all(confirmed.values()), verdict["summary"]
        assert unsafe_roles(state) - {role} == set(), state
        assert result.status == events.FAILED
        assert "NOT CONFIRMED" in result.error
    else:  # the link came back: reconnected, everything confirmed and safe
        assert all(confirmed.values()), verdict["summary"]
        assert unsafe_roles(state) == set(), state


CHILD = textwrap.dedent("""
    import json, os, sys
    from daqapp.station.connected import ConnectedStation
    sys.path.insert(0, os.environ["MATRIX_TESTS"])
    from test_safe_state_matrix import emulator_state, make_unsafe

    original_close = ConnectedStation.close
    opened = ConnectedStation.__init__

    def init(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        make_unsafe(self)

    def close(self):
        if self.lab is not None and "MATRIX_STATE" in os.environ:
            with open(os.environ["MATRIX_STATE"], "w") as fh:
                json.dump(emulator_state(self.lab), fh)
        original_close(self)

    ConnectedStation.__init__ = init
    ConnectedStation.close = close
    from daqapp.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def station_file(folder: Path, wiring: dict[str, Any]) -> Path:
    lines = ["[station]", 'name = "matrix"', "[simulation]", "simulated = true",
             "speed = 300.0", "seed = 5"]
    for role, driver in DRIVERS.items():
        lines += [f"[{role}]", f'driver = "{driver}"']
    lines += ["[wiring]"] + [f'{k} = "{v}"' for k, v in wiring.items()]
    lines += ["[safe_state]", 'magnet = "zero"', f"heater_setpoint_k = {SAFE_SETPOINT_K}",
              "heater_range = 0"]
    path = folder / "station.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_sigterm_aborts_into_a_confirmed_safe_state(tmp_path):
    """`kill PID` (twice) during each procedure: aborted, reason SIGTERM, exit 143, all safe."""
    children = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT), MATRIX_TESTS=str(Path(__file__).parent))
    for key, spec in PROCEDURES.items():
        folder = tmp_path / key
        folder.mkdir()
        name, assignments = spec["cli"]
        argv = [sys.executable, "-c", CHILD, "run", name,
                "--station", str(station_file(folder, spec["wiring"])),
                "--output", str(folder / "runs"), "--quiet"]
        for assignment in assignments:
            argv += ["--set", assignment]
        child_env = dict(env, MATRIX_STATE=str(folder / "state.json"))
        children[key] = (subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True), folder)
    waiting, deadline = dict(children), time.monotonic() + 60
    while waiting and time.monotonic() < deadline:  # kill each as soon as it has 3 rows
        for key, (child, folder) in list(waiting.items()):
            assert child.poll() is None, f"{key} ended before SIGTERM: {child.communicate()}"
            files = list((folder / "runs").glob("*.h5")) if (folder / "runs").exists() else []
            if files and _rows(files[0]) >= 3:
                child.send_signal(signal.SIGTERM)
                time.sleep(0.05)
                child.send_signal(signal.SIGTERM)  # a second kill must not cut it short
                del waiting[key]
        time.sleep(0.05)
    assert not waiting, f"never reached 3 rows: {sorted(waiting)}"
    for key, (child, folder) in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == 128 + signal.SIGTERM, (key, out, err)
        assert out.strip().splitlines()[-1].startswith("safe state confirmed"), (key, out)
        (path,) = (folder / "runs").glob("*.h5")
        with open_run(path) as stored:
            assert stored.status == "aborted", key
            assert "SIGTERM" in str(stored.attrs["error"]), key
            verdict = stored.snapshots["end"]["safe_state_report"]
        assert verdict["confirmed"] is True, (key, verdict["summary"])
        state = json.loads((folder / "state.json").read_text())
        assert unsafe_roles(state) == set(), (key, state)


def _rows(path: Path) -> int:
    try:
        with open_run(path) as stored:
            return int(stored.n_rows)
    except Exception:  # noqa: BLE001 - not readable yet: the writer is still starting
        return 0
