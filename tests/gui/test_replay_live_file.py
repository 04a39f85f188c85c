"""Replay follows a run file that another process is still writing (SWMR), to its end."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from daqapp.gui.replay import ReplayWindow

CHILD = textwrap.dedent("""
    import sys, time
    from daqapp.storage import RunWriter
    w = RunWriter(sys.argv[1], procedure="tests.gui.child",
                  columns={"dc_voltage": "V", "didv": "S", "temperature": "K", "time": "s",
                           "sweep": ""}, sweep_axis="dc_voltage", flush_interval=0.05)
    w.start({})
    print("started", flush=True)
    total = 0
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "rows":
            for _ in range(int(arg[0])):
                w.append({"dc_voltage": (total % 50 - 25) * 1e-3, "didv": 1e-3 + total * 1e-6,
                          "temperature": 4.2, "time": 1.7e9 + total, "sweep": total // 50})
                total += 1
            while w.rows_flushed < total:
                time.sleep(0.01)
            print("flushed", total, flush=True)
        elif cmd == "finish":
            w.finish("finished")
            print("finished", flush=True)
            break
""")


def command(child: subprocess.Popen, line: str) -> str:
    child.stdin.write(line + "\n")
    child.stdin.flush()
    return child.stdout.readline().strip()


def test_replay_follows_a_file_being_written_by_another_process(qtbot, tmp_path):
    path = tmp_path / "growing.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        assert command(child, "rows 120") == "flushed 120"
        replay = ReplayWindow([path], speed=None, fit=False, autoplay=False)
        qtbot.addWidget(replay)
        replay._tick()  # noqa: SLF001 - one timer tick
        player = replay.player
        assert len(player.buffer) == 120 and player.live
        assert "live" in replay.file_label.text()
        assert command(child, "rows 80") == "flushed 200"
        qtbot.waitUntil(lambda: (replay._tick(), len(player.buffer))[1] == 200,  # noqa: SLF001
                        timeout=20_000)
        assert command(child, "finish") == "finished"
        qtbot.waitUntil(lambda: (replay._tick(), player.done)[1], timeout=20_000)  # noqa: SLF001
    finally:
        child.stdin.close()
        child.wait(20)
    assert player.reader.status == "finished"
    x, y = replay.plots.didv.trace_data("sweep current")
    columns = player.buffer.snapshot()
    last = columns["sweep"] == 3
    np.testing.assert_array_equal(x, columns["dc_voltage"][last] * 1e3)
    np.testing.assert_array_equal(y, columns["didv"][last] * 1e3)
    assert len(replay.plots.didv.trace_keys()) == 4  # the sweep shown plus three earlier ones
    replay.close()
