"""Shared pieces of the storage tests: a spectrum-like run written the way procedures do."""

import math

import pytest

from daqapp.storage import RunWriter

SPECTRUM_COLUMNS = {"bias_current": "A", "dc_voltage": "V", "x": "V", "y": "V", "dvdi": "ohm",
                    "didv": "S", "temperature": "K", "field": "T", "time": "s", "sweep": ""}

FIT = {
    "model": "btk_two_gap", "dimension": "2D", "param_names": ["delta1", "delta2", "gamma", "Z"],
    "params": {
        "delta1": {"value": 1.21, "stderr": 0.05, "vary": True, "min": 0.0, "max": 10.0},
        "delta2": {"value": 3.9, "stderr": 0.2, "vary": True, "min": 0.0, "max": None},
        "gamma": {"value": 0.8, "stderr": None, "vary": False, "min": 0.0, "max": 5.0},
        "Z": {"value": 0.62, "stderr": 0.01, "vary": True, "min": 0.0, "max": 5.0},
    },
    "covariance": [[0.0025, 1e-4, 0.0], [1e-4, 0.04, 0.0], [0.0, 0.0, 1e-4]],
    "chi2": 12.5, "chi2_red": 1.04, "aic": -310.2, "bic": -298.7, "n_points": 401,
    "noise_sigma": 0.003, "bias_window_mV": [-20.0, 20.0], "temperature_K": 2.0,
}


def spectrum_record(sweep: int, i: int, n: int, t0: float = 1000.0) -> dict:
    """A lock-in spectrum point: V from -n/2..n/2 mV, a conductance dip at zero bias."""
    v = (i - n // 2) * 1e-3
    didv = 1.0 / 50.0 * (1.0 + 0.3 * math.exp(-(v / 2e-3) ** 2))
    return {"bias_current": v / 50.0, "dc_voltage": v, "x": 1e-6 / didv, "y": 0.0,
            "dvdi": 1.0 / didv, "didv": didv, "temperature": 2.0 + sweep,
            "field": 0.5 * sweep, "time": t0 + 100.0 * sweep + i, "sweep": sweep}


@pytest.fixture
def spectrum_run(tmp_path):
    """A finished run with 3 sweeps of 21, 21 and 11 points, a fit and a log line."""
    path = tmp_path / "spectrum.h5"
    w = RunWriter(path, procedure="procedures.spectrum.LockInSpectrum",
                  parameters={"excitation": {"value": 0.1, "units": "V"},
                              "bias_resistor": {"value": 48e3, "units": "ohm"},
                              "biases": {"value": [-0.01, 0.0, 0.01], "units": "V"},
                              "direction": {"value": "both", "units": ""}},
                  metadata={"operator": "ana", "sample": "La3Ni2O7", "cell": "Cell 2",
                            "pressure_GPa": 18.8, "cryostat": "PPMS"},
                  columns=SPECTRUM_COLUMNS, sweep_axis="dc_voltage")
    w.start(snapshot={"lockin": {"idn": "Stanford_Research_Systems,SR830", "tau": 0.1}})
    for sweep, n in ((0, 21), (1, 21), (2, 11)):
        for i in range(n):
            w.append(spectrum_record(sweep, i, n))
    w.log("info", "spectrum done")
    w.add_fit("sweep0", FIT)
    w.finish("finished", snapshot={"lockin": {"idn": "Stanford_Research_Systems,SR830",
                                              "tau": 0.3}})
    return path


@pytest.fixture
def fit_dict():
    """A FitResult.to_dict()-shaped fit with None (unbounded max, fixed stderr) inside."""
    return FIT


@pytest.fixture
def spectrum_columns():
    return dict(SPECTRUM_COLUMNS)


@pytest.fixture
def make_record():
    return spectrum_record
