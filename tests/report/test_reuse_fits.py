"""The report reuses the campaign's on-line (preview) fits only where its own analysis would
compute exactly the same thing: same spectrum, same options, same colder constraint."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from daqapp.analysis.batch import SeriesTask, fit_series
from tests.analysis.test_spectroscopy import TABLE3, write_run

A = importlib.import_module("daqapp.report.analyse")  # the package re-exports analyse()


@pytest.fixture()
def previewed(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "_PREVIEW_FITS", {})
    monkeypatch.setattr(A, "_PREVIEW_SERIES", {})
    paths = [write_run(tmp_path / f"{k:03d}-spectrum.h5", [row], points=121, noise=0.002)
             for k, row in enumerate(TABLE3[:3:2])]
    for p in paths:  # as the campaign does after each spectrum step
        assert A.quick_fit_run(p) is not None
    return paths


def _values(outcome):
    return [a.result().values for a in outcome.analyses]


def test_reused_fits_are_the_ones_a_refit_gives(previewed):
    items = [i for p in previewed for i in A.load_run_spectra(p, A.ReportOptions())]
    fresh = fit_series(SeriesTask("", items))
    taken = []

    def reuse(item, series):
        found = A._previewed(item, series)
        taken.append(found is not None)
        return found

    again = fit_series(SeriesTask("", items), reuse=reuse)
    assert taken == [True, True]
    previews = [hit[2] for hit in A._PREVIEW_FITS.values()]
    assert all(any(a is p for p in previews) for a in again.analyses)
    for new, old in zip(_values(again), _values(fresh), strict=True):
        assert new.keys() == old.keys()
        np.testing.assert_allclose([new[k] for k in new], [old[k] for k in new], rtol=1e-9)
    np.testing.assert_allclose(again.gaps.delta1, fresh.gaps.delta1, rtol=1e-9)


def test_no_reuse_when_options_or_the_colder_constraint_differ(previewed):
    other = [i for p in previewed
             for i in A.load_run_spectra(p, A.ReportOptions(fit_max_bias_mV=40.0))]
    assert other and all(A._previewed(i, _empty_series()) is None for i in other)
    items = [i for p in previewed for i in A.load_run_spectra(p, A.ReportOptions())]
    # the warmer spectrum alone: its preview was constrained by the colder one, this is not
    assert A._previewed(items[1], _empty_series()) is None
    assert A._previewed(items[0], _empty_series()) is not None


def _empty_series():
    from daqapp.analysis.spectroscopy import SeriesFit

    return SeriesFit()
