"""The campaign progress line: monotonic percentage, the running step's number, fits named by
their step, and a resume that starts where the last session left off."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import campaign_fakes as fakes  # noqa: E402

from daqapp.campaign import manifest as M  # noqa: E402
from daqapp.campaign.executor import resume_campaign, run_campaign  # noqa: E402
from daqapp.campaign.progress import ProgressLine  # noqa: E402

LINE = re.compile(r"\]\s+(?P<pct>[\d.]+)%\s+step (?P<n>\d+)/(?P<total>\d+) (?P<key>\S+) "
                  r"(?P<state>.*?)\s+\d+%\s+ETA")


def parsed(text: str) -> list[dict]:
    return [m.groupdict() for m in map(LINE.search, text.splitlines()) if m]


def test_percentage_never_decreases_through_steps_and_a_retry():
    stream = io.StringIO()
    line = ProgressLine(3, 30.0, stream=stream)
    seen = []
    for position, key in enumerate(["001-a", "002-b", "003-c"], start=1):
        line.begin(key, 10.0, position=position)
        seen.append(line.fraction())
        line.update(0.6)
        seen.append(line.fraction())
        if key == "002-b":  # a failed attempt, retried: its own share restarts from zero
            line.begin(key, 10.0, position=position)
            seen.append(line.fraction())
            line.update(0.3)
            seen.append(line.fraction())
            line.update(0.9)
            seen.append(line.fraction())
        line.end(key, "done", 10.0)
        seen.append(line.fraction())
        assert line.current == position  # the done line names the step that just ended
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    rows = parsed(stream.getvalue())
    done = [r for r in rows if r["state"] == "done"]
    assert [(r["n"], r["key"]) for r in done] == [("1", "001-a"), ("2", "002-b"),
                                                   ("3", "003-c")]
    # the line right after a step's "done" line is the next step at the same or a higher %
    assert [float(r["pct"]) for r in rows] == sorted(float(r["pct"]) for r in rows)


def test_done_line_counts_the_step_once():
    line = ProgressLine(2, 20.0, stream=io.StringIO())
    line.begin("001-a", 10.0, position=1)
    line.update(1.0)
    line.end("001-a", "done", 10.0)
    assert line.fraction() == 0.5  # not 1.0: the ended step is not counted twice


def test_stale_background_fit_does_not_replace_a_newer_one():
    line = ProgressLine(3, 30.0, stream=io.StringIO())
    line.begin("001-a", 10.0, position=1)
    line.end("001-a", "done", 10.0)
    line.begin("002-b", 10.0, position=2)
    line.fit("Δ=1.00", "002-b")
    line.fit("Δ=0.50", "001-a")  # the slow quick fit of the step before arrives late
    assert line.latest_fit == "002-b: Δ=1.00"
    assert "fit 002-b: Δ=1.00" in line.line()


def test_resumed_line_starts_where_the_last_session_left_and_eta_uses_this_session():
    line = ProgressLine(4, 40.0, stream=io.StringIO(), done=2, done_estimate_s=20.0)
    assert line.fraction() == 0.5
    assert line.current == 3
    line.started -= 5.0  # five seconds into this session, nothing of it progressed yet
    assert line.eta_s() == 20.0  # the remaining estimate, not scaled by earlier sessions' work
    line.begin("003-c", 10.0, position=3)
    line.update(0.5)  # 5 s of estimate done in 5 s of wall time: pace 1
    assert abs(line.eta_s() - 15.0) < 0.5


def _run_with_progress(tmp_path, capsys):
    path = fakes.write_campaign(tmp_path, points=3)
    out = run_campaign(path, output=tmp_path / "out", catalog=fakes.catalog(),
                       connect=lambda c: fakes.FakeStation(), show_progress=True,
                       quiet_console=True)
    return out, capsys.readouterr().err


def test_campaign_progress_is_monotonic_and_counts_the_running_step(tmp_path, capsys):
    out, err = _run_with_progress(tmp_path, capsys)
    assert out.status == "finished", out.message
    rows = parsed(err)
    assert rows, err
    percents = [float(r["pct"]) for r in rows]
    assert percents == sorted(percents), err
    assert percents[-1] == 100.0
    for row in rows:  # the counter is the key's own number: 1-based, of the total
        assert row["total"] == "4"
        assert int(row["key"][:3]) == int(row["n"]), row
    assert [r["n"] for r in rows if r["state"] == "done"] == ["1", "2", "3", "4"]


def test_resumed_campaign_progress_continues_upwards(tmp_path, capsys):
    out, _ = _run_with_progress(tmp_path, capsys)
    manifest_path = out.folder / M.MANIFEST_NAME
    data = json.loads(manifest_path.read_text())
    for step in data["steps"][2:]:  # as if killed before the last two steps
        step["status"] = M.PENDING
        step["file"] = None
    data["status"] = "interrupted"
    manifest_path.write_text(json.dumps(data))
    for step in data["steps"][2:]:
        (out.folder / f"{step['key']}.h5").unlink()
    again = resume_campaign(out.folder, catalog=fakes.catalog(),
                            connect=lambda c: fakes.FakeStation(), show_progress=True,
                            quiet_console=True)
    err = capsys.readouterr().err
    assert again.status == "finished", again.message
    rows = parsed(err)
    percents = [float(r["pct"]) for r in rows]
    assert rows[0]["n"] == "3" and percents[0] > 0.0, err
    assert percents == sorted(percents) and percents[-1] == 100.0, err


def test_a_late_fit_after_the_last_step_ends_its_line_on_a_terminal():
    """On a terminal the closing 'campaign finished …' line once continued the progress bar
    redrawn by the last step's preview fit."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    line = ProgressLine(1, 10.0, stream=stream)
    line.begin("001-nb", 10.0, position=1)
    line.end("001-nb", "done", 10.0)
    line.fit("T=3.0 K Δ1=1.49", "001-nb")
    print("campaign finished", file=stream)
    last = stream.getvalue().split("\r")[-1]
    assert "fit 001-nb: T=3.0 K Δ1=1.49" in last
    assert last.endswith("\ncampaign finished\n")


def test_eta_after_resume_does_not_jump_while_the_first_step_stabilises():
    """Seconds of reconnecting and stabilising before the resumed session's first point do
    not inflate the ETA (it was 6 s → 77 s); once a step finishes, its own duration sets
    the pace."""
    line = ProgressLine(4, 40.0, stream=io.StringIO(), done=2, done_estimate_s=20.0)
    line.begin("003-c", 10.0, position=3)
    line.started -= 3.0
    line._step_began -= 3.0  # noqa: SLF001 - three seconds spent stabilising
    line.update(0.05)
    assert line.eta_s() <= 20.0  # the remaining estimate (was 117 s: 3 s / 0.5 s of progress)
    line._step_began -= 17.0  # noqa: SLF001 - the step took 20 s against its 10 s estimate
    line.end("003-c", "done", 10.0)
    assert abs(line.eta_s() - 20.0) < 0.5  # 10 s left at pace 2
