"""The on-line fit worker: fits off the caller's thread, recovers gaps, builds Δ(T), stores fits."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.gaps import gap_bcs
from daqapp.fitworker import (
    AnalysisFitter,
    FitWorker,
    ParameterRow,
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


class _BCSFitter:
    """Returns the exact BCS gap of each spectrum's temperature (tests the Δ(T) bookkeeping)."""

    TC, DELTA0 = 72.0, 23.0

    def prepare(self, spectrum):
        return spectrum

    def fit(self, prepared, model, warm_start):
        d1 = float(gap_bcs(prepared.temperature_K, self.DELTA0, self.TC))
        return {"d1": d1, "d2": d1 * 6 / 23, "warm": warm_start}

    def stats(self, result):
        return {"chi2_red": 1.0, "aic": 10.0, "bic": 12.0, "n_free": 7, "n_points": 301}

    def rows(self, result, model, spectrum):
        return [ParameterRow(model, "Δ1", result["d1"], 0.1, "meV")]

    def gaps(self, result):
        return result["d1"], 0.1, result["d2"], 0.1

    def curve(self, result, prepared, bias_mV):
        return np.ones_like(bias_mV)

    def to_dict(self, result, prepared, spectrum):
        return {"delta1": result["d1"], "sweep": spectrum.sweep}


def test_temperature_series_builds_gap_curve_and_tc_from_events():
    fitter = _BCSFitter()
    stored: list[tuple[str, dict]] = []
    worker = FitWorker(models=("s+s",), fitter=fitter, store=lambda n, d: stored.append((n, d)))
    # the record stream of a run: per-point records, a sweep_end after each spectrum
    temps = [3.0, 20.0, 35.0, 50.0, 60.0, 66.0]
    for sweep, kelvin in enumerate(temps):
        for v in BIAS_MV[::10]:
            worker.handle_event(RunEvent(RECORD, {"dc_voltage": v * 1e-3, "didv": 1e-3,
                                                   "temperature": kelvin, "sweep": sweep}))
        worker.handle_event(RunEvent(SWEEP_END, {"sweep": sweep, "temperature": kelvin}))
    assert worker.wait_idle(60)
    worker.stop()
    last = worker.updates[-1]
    np.testing.assert_allclose(last.gap_series.temperature_K, temps)
    assert last.gap_series.delta2 is not None
    tc_fit = last.gap_fits[0]
    assert tc_fit.tc_K == pytest.approx(72.0, abs=0.5)
    assert tc_fit.delta0_meV == pytest.approx(23.0, abs=0.1)
    # warm start: every spectrum after the first started from the previous result
    assert worker.warm["s+s"]["warm"] is not None
    names = [n for n, _ in stored]
    assert names[:2] == ["sweep0000_s+s", "sweep0001_s+s"]
    assert "gap_T_delta1_bcs" in names
    # no Tc before three temperatures were known
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
        FitWorker(models=("p-wave",), fitter=_BCSFitter())
    fitter = AnalysisFitter()
    with pytest.raises(ValueError, match="temperature unknown"):
        fitter.prepare(Spectrum(0, BIAS_MV, measured_spectrum(3.0), math.nan))


def test_critical_current_dips_are_left_out_but_btk_structure_is_not():
    from daqapp.fitworker import dip_mask

    clean = measured_spectrum(3.0, seed=5)
    assert not dip_mask(BIAS_MV, clean).any()  # gap peaks and the zero-bias dip stay in
    dipped = clean.copy()
    for centre in (-35.0, 35.0):  # Ic dips: narrow, 15 % deep, symmetric
        dipped *= 1 - 0.15 * np.exp(-0.5 * ((BIAS_MV - centre) / 0.6) ** 2)
    mask = dip_mask(BIAS_MV, dipped)
    assert mask.any() and mask.sum() < 0.05 * BIAS_MV.size
    assert np.all(np.abs(np.abs(BIAS_MV[mask]) - 35.0) < 3.0)
    prepared = AnalysisFitter().prepare(Spectrum(0, BIAS_MV, dipped, 3.0))
    assert prepared.excluded_mV() == sorted(BIAS_MV[mask].tolist())
