"""The on-line fit worker: fits off the caller's thread, recovers gaps, builds Δ(T), stores fits."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.gaps import gap_bcs
from daqapp.fitworker import (
    FitWorker,
    RunFitStore,
    Spectrum,
    SweepCollector,
)
from daqapp.runner.events import RECORD, SWEEP_END, RunEvent
from daqapp.storage import RunWriter, open_run

BIAS_MV = np.linspace(-60.0, 60.0, 301)


def measured_spectrum(temperature_K: float, seed: int = 0) -> np.ndarray:
    """Seed Cell 2 at 3 K (Extended Data Table 3), times a sloped, curved normal-state
    background in siemens, with 0.3 % noise: what the lock-in procedure records."""
    g = conductance(BIAS_MV, temperature_K, [Gap(23.0, 6.6, 0.58, weight=0.5),
                                             Gap(6.0, 4.0, 0.4, weight=0.5)])
    rng = np.random.default_rng(seed)
    background = 2e-3 * (1 + 4e-4 * BIAS_MV + 1.5e-5 * BIAS_MV**2)
    return g * background * (1 + 0.003 * rng.normal(size=BIAS_MV.size))


def test_two_gap_spectrum_with_background_is_recovered_off_thread():
    seen: list = []
    threads: list[str] = []
    worker = FitWorker(models=("s+s", "s"))
    worker.add_listener(lambda u: (seen.append(u), threads.append(threading.current_thread().name)))
    worker.submit(Spectrum(0, BIAS_MV, measured_spectrum(3.0), 3.0))
    assert worker.wait_idle(300)
    worker.stop()
    (update,) = seen
    assert threads == ["fit-worker"]
    assert not update.errors
    values = {r.name: r for r in update.parameters if r.model == "s+s"}
    assert values["Δ1"].value == pytest.approx(23.0, rel=0.02)
    assert values["Δ2"].value == pytest.approx(6.0, rel=0.08)
    assert values["Δ1"].unit == "meV" and 0 < values["Δ1"].error < 1.0
    # the one-gap model cannot describe two gaps: ranked below, decisively
    assert [c.model for c in update.comparison] == ["s+s", "s"]
    assert update.comparison[1].delta_aic > 10
    # the overlay is in the measured units (S), on top of the data
    fit_at_data = np.interp(BIAS_MV, update.fit_bias_mV, update.fit_didv)
    residual = (fit_at_data - measured_spectrum(3.0)) / measured_spectrum(3.0)
    assert np.sqrt(np.mean(residual**2)) < 0.006


def test_temperature_series_builds_gap_curve_and_tc_from_events():
    """The record stream of a temperature series (BCS gaps, Tc 72 K): Δ(T), Tc once it is
    determined, every fit stored; the series holds the contact's channel weight."""
    stored: list[tuple[str, dict]] = []
    worker = FitWorker(models=("s+s",), store=lambda n, d: stored.append((n, d)))
    temps = [3.0, 20.0, 35.0, 50.0, 60.0]
    for sweep, kelvin in enumerate(temps):
        d1, d2 = (float(gap_bcs(kelvin, d0, 72.0)) for d0 in (23.0, 6.0))
        g = conductance(BIAS_MV, kelvin, [Gap(d1, 6.6, 0.58, weight=0.5),
                                          Gap(d2, 4.0, 0.4, weight=0.5)])
        g = g * 2e-3 * (1 + 1.5e-5 * BIAS_MV**2) * (
            1 + 0.001 * np.random.default_rng(sweep).normal(size=BIAS_MV.size))
        for v, gi in zip(BIAS_MV, g, strict=True):
            worker.handle_event(RunEvent(RECORD, {"dc_voltage": v * 1e-3, "didv": gi,
                                                   "temperature": kelvin, "sweep": sweep}))
        worker.handle_event(RunEvent(SWEEP_END, {"sweep": sweep, "temperature": kelvin}))
    assert worker.wait_idle(300)
    worker.stop()
    last = worker.updates[-1]
    np.testing.assert_allclose(last.gap_series.temperature_K, temps)
    assert last.gap_series.delta2 is not None
    tc_fit = last.gap_fits[0]
    assert last.gap_series.tc_determined["delta1"]
    assert tc_fit.tc_K == pytest.approx(72.0, rel=0.04)
    assert tc_fit.delta0_meV == pytest.approx(23.0, rel=0.02)
    assert "Tc = " in last.status
    # the channel weight is the contact's: held from the first spectrum on
    w = [u.results["s+s"].values["weight1"] for u in worker.updates]
    assert w[1:] == [w[0]] * (len(w) - 1)
    assert not worker.updates[1].results["s+s"].params["weight1"]["vary"]
    names = [n for n, _ in stored]
    assert names[:2] == ["sweep0000_s+s", "sweep0001_s+s"]
    assert "gap_T_delta1_bcs" in names
    # no Δ(T) fit before three temperatures were known
    assert worker.updates[1].gap_fits[0] is None


def test_fits_go_into_the_run_file_while_open_and_after_it_closed(tmp_path):
    path = tmp_path / "run.h5"
    writer = RunWriter(path, procedure="test", columns={"dc_voltage": "V", "didv": "S",
                                                        "temperature": "K", "sweep": ""},
                       sweep_axis="dc_voltage")
    writer.start({})
    state = {"writer": writer}
    store = RunFitStore(lambda: state["writer"], lambda: path)
    store("sweep0000_s+s", {"model": "s+s", "delta1": 23.0})
    writer.finish("finished")
    state["writer"] = None  # as the run does when it closes its file
    store("gap_T_delta1_bcs", {"tc_K": 71.5})
    with open_run(path) as run:
        fits = run.fits
    assert fits["sweep0000_s+s"]["delta1"] == 23.0
    assert fits["gap_T_delta1_bcs"]["tc_K"] == 71.5
    assert store.stored == ["sweep0000_s+s", "gap_T_delta1_bcs"]


def test_collector_splits_sweeps_and_converts_bias_to_mV():
    collector = SweepCollector({"dc_voltage": "V", "didv": "S"})
    assert collector.add({"dc_voltage": 0.0, "didv": 1.0, "sweep": 0}) is None
    for i in range(1, 30):
        collector.add({"dc_voltage": i * 1e-3, "didv": 1.0, "temperature": 4.0, "sweep": 0})
    done = collector.add({"dc_voltage": 0.0, "didv": 1.0, "sweep": 1})
    assert done is not None and done.sweep == 0 and len(done.bias_mV) == 30
    assert done.bias_mV[-1] == pytest.approx(29.0)
    assert done.temperature_K == pytest.approx(4.0)
    # too short a sweep is not worth a fit
    assert collector.finish() is None


def test_bad_model_names_are_refused_with_the_allowed_list():
    with pytest.raises(ValueError, match="s, d, s\\+s"):
        FitWorker(models=("p-wave",))


def test_a_spectrum_without_temperature_is_reported_not_fitted():
    worker = FitWorker(models=("s",))
    worker.submit(Spectrum(0, BIAS_MV, measured_spectrum(3.0), math.nan))
    assert worker.wait_idle(60)
    worker.stop()
    assert worker.updates == []  # logged by the worker thread, nothing half-fitted shown


def test_the_collector_carries_current_and_the_junction_modulation():
    collector = SweepCollector({"dc_voltage": "V", "didv": "S", "bias_current": "A",
                                "i_ac": "A", "dvdi": "Ohm"})
    for i in range(40):
        collector.add({"dc_voltage": (i - 20) * 1e-3, "didv": 1 / 400, "dvdi": 400.0,
                       "bias_current": (i - 20) * 2.5e-6, "i_ac": 2e-6, "temperature": 3.0,
                       "sweep": 0})
    spectrum = collector.finish()
    assert spectrum.current_mA[-1] == pytest.approx(19 * 2.5e-3)
    assert spectrum.modulation_mV == pytest.approx(0.8)  # 2 µA × 400 Ω
    assert spectrum.normalized is False


def test_attach_takes_the_lead_from_the_station_wiring_and_continues_a_contacts_series():
    from types import SimpleNamespace

    from daqapp.station.config import Station

    station = SimpleNamespace(wiring=Station.simulated("la3ni2o7-cell2").wiring)
    assert station.wiring.series_resistance_ohm == 25.0  # the virtual lab's own lead

    class Run:
        def __init__(self, metadata):
            self.metadata, self.station = metadata, station
            self.procedure = SimpleNamespace(excitation=0.1, bias_resistor=0.0,
                                             column_units=lambda: {"dc_voltage": "V"})

        def subscribe(self, listener):
            pass

    worker = FitWorker(models=("s+s",))
    worker.attach(Run({"sample": "LNO", "cell": "2"}))
    assert worker.options().series_resistance_ohm == 25.0
    worker.series_fit.analyses.append("a spectrum")  # the series so far
    worker.attach(Run({"sample": "LNO", "cell": "2"}))  # same contact: the series goes on
    assert worker.series_fit.analyses == ["a spectrum"]
    worker.attach(Run({"sample": "Nb", "cell": ""}))  # another contact: a new series
    assert worker.series_fit.analyses == []


def test_stop_drops_queued_spectra_and_the_thread_ends():
    """A closed window must not go on fitting its queue: stop() lets the fit in progress
    finish, skips the rest, and the thread is gone; wait_idle() before stop() keeps them."""
    worker = FitWorker(models=("s+s",))
    for sweep, temperature in enumerate((3.0, 10.0, 20.0, 30.0, 40.0, 50.0)):
        worker.submit(Spectrum(sweep, BIAS_MV, measured_spectrum(temperature, sweep),
                               temperature))
    thread = worker._thread  # noqa: SLF001 - the worker's own thread, to see it end
    worker.stop(timeout=120)
    assert thread is not None and not thread.is_alive()
    assert len(worker.updates) <= 1
    assert worker.wait_idle(1)  # the skipped spectra are not left pending
