"""SIGTERM in the operator window: the running run is aborted with the signal as its reason,
the instruments end safe (checked at the emulators) and the window quits."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from daqapp.commands.gui import abort_and_quit  # noqa: E402
from daqapp.gui.main_window import MainWindow  # noqa: E402
from daqapp.station import Station  # noqa: E402
from daqapp.storage import open_run  # noqa: E402


class _App:
    quit_called = False

    def quit(self) -> None:
        self.quit_called = True


def test_sigterm_aborts_the_window_run_into_a_confirmed_safe_state(qtbot, tmp_path):
    config = Station.simulated(speed=1000.0, seed=4, wiring={"dc_bias_source": "current_source"})
    with config.connect() as conn:
        window = MainWindow(conn, output_dir=tmp_path, monitor_interval_s=0.2)
        qtbot.addWidget(window)
        form = window.select_procedure("didv-lockin")
        form.fields["points"].editor.setText("3001")
        form.fields["directions"].editor.setCurrentText("up")
        item = window.queue_current()
        qtbot.waitUntil(lambda: item.buffer is not None and len(item.buffer) >= 5,
                        timeout=60_000)
        assert conn.lab.emulators["current_source"].output is True
        app = _App()
        abort_and_quit(window, app, "terminated by SIGTERM")
        assert app.quit_called and item.finished
        assert item.status == "aborted"
        source, lockin = conn.lab.emulators["current_source"], conn.lab.emulators["lockin"]
        assert source.output is False and source.level == 0.0
        assert lockin.slvl == 0.004 and list(lockin.aux_out) == [0.0] * 4
        with open_run(item.path) as stored:
            assert stored.status == "aborted"
            assert stored.attrs["error"] == "terminated by SIGTERM"
            assert stored.snapshots["end"]["safe_state_report"]["confirmed"] is True
        assert "safe state confirmed" in window.run_label.text()
