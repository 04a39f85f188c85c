"""The report's figures as a referee looks at them: vector PDF and 300 dpi PNG, the Hc2 points
in an inset instead of a corner and not clipped, only the Tc lines a panel shows, colours
readable on white, framed legends; and ``--model d`` offered where the models are."""

from __future__ import annotations

import argparse

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from daqapp.report import figures
from daqapp.report.figures import DPI, _colors, hc2_figure, rt_figure, write_all
from daqapp.report.results import (
    CurveFit,
    ReportData,
    RTCurve,
    SpectrumResult,
    Value,
)
from tests.report.test_report_parts import report_data

matplotlib.use("Agg")


def _data() -> ReportData:
    """Every figure's data except the Nb calibration's: the report-parts data, with the
    Tc-zero line, the Hc2 points' errors and the two-band fit the figures draw."""
    data = report_data()
    data.hc2_errors_K = np.array([0.3, 0.3, 0.3])
    data.summary["tc_zero_K"] = Value(10.0, 0.3, "K")
    grid = np.linspace(0, 72, 50)
    data.hc2_fits["two_band"] = CurveFit("two band", grid, 95 * (1 - (grid / 70) ** 1.5),
                                         {"hc2_0_T": Value(95, 2, "T", 9, 20, "η")})
    return data


def test_every_figure_is_a_pdf_and_a_300_dpi_png(tmp_path):
    written = write_all(_data(), tmp_path)
    pngs = [p for p in written if p.suffix == ".png"]
    pdfs = [p for p in written if p.suffix == ".pdf"]
    assert len(pngs) == len(pdfs) == 5
    assert {p.stem for p in pngs} == {p.stem for p in pdfs}
    for png in pngs:
        with Image.open(png) as im:
            assert im.info["dpi"][0] == pytest.approx(DPI, abs=1) and DPI >= 300
            assert im.size[0] >= 5 * DPI  # a 5.6–10 inch figure at 300 dpi
    for pdf in pdfs:
        assert pdf.read_bytes()[:5] == b"%PDF-"


def test_hc2_figure_has_an_inset_on_the_measured_points_and_does_not_clip_them():
    data = _data()
    fig = hc2_figure(data)
    main = fig.axes[0]
    (inset,) = main.child_axes
    t, b = data.hc2_points
    lo, hi = inset.get_xlim()
    assert lo < t.min() and hi > t.max()
    assert hi - lo < 0.5 * (main.get_xlim()[1] - main.get_xlim()[0])  # a zoom, not a copy
    assert inset.get_ylim()[0] < 0 < inset.get_ylim()[1]  # the 0 T point inside, not on the edge
    points = [line for line in main.lines if line.get_marker() == "o"]
    assert points and all(not line.get_clip_on() for line in points)
    matplotlib.pyplot.close(fig)


def test_rt_panels_list_only_the_tc_lines_they_show():
    data = _data()
    data.summary["tc_onset_K"] = Value(70.0, 0.3, "K")
    data.rt_normal_state = ((0.006, 0.25), (77.0, 90.0))
    fig = rt_figure(data)
    full, zoom = fig.axes[:2]

    def labels(ax):
        return " ".join(t.get_text() for t in ax.get_legend().get_texts())

    assert "zero" in labels(full) and "onset" in labels(full)
    assert zoom.get_xlim()[0] > 10.0
    assert "zero" not in labels(zoom) and "onset" in labels(zoom)
    assert "R_N" in labels(zoom)  # the line the 90 % criterion is a fraction of
    matplotlib.pyplot.close(fig)


def _contrast_on_white(color) -> float:
    c = np.array(to_rgb(color))
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    luminance = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    return 1.05 / (luminance + 0.05)


def test_series_colours_are_readable_on_white():
    colours = _colors(list(np.linspace(3, 80, 15)))
    assert len({tuple(c) for c in colours}) == 15
    assert min(_contrast_on_white(c) for c in colours) >= 4.5  # no pale yellow or grey


def test_legends_are_framed_so_their_markers_are_not_data(tmp_path):
    data = _data()
    with matplotlib.pyplot.rc_context(figures.STYLE):
        for draw in (figures.rt_figure, figures.hc2_figure, figures.spectra_figure,
                     figures.gap_figure, figures.iv_figure):
            fig = draw(data)
            legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
            assert legends and all(leg.get_frame_on() for leg in legends), draw.__name__
            matplotlib.pyplot.close(fig)


def test_rt_curve_colours_do_not_include_pale_ones():
    data = _data()
    data.rt_curves = [RTCurve(b, np.linspace(2, 90, 50), np.linspace(0, 1, 50))
                      for b in (0, 1, 2, 4, 6, 8)]
    fig = rt_figure(data)
    colours = [line.get_color() for line in fig.axes[0].lines if line.get_label().endswith("T")]
    assert min(_contrast_on_white(c) for c in colours) >= 4.5
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("command", ["report", "replay"])
def test_model_d_is_offered_by_report_and_replay(command):
    from daqapp.commands import replay, report

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    (report if command == "report" else replay).register(sub)
    for model in ("s", "d", "s+s", "s+d", "d+s", "d+d"):
        args = parser.parse_args([command, "somewhere", "--model", model])
        assert args.model == model


def test_the_gap_axis_follows_the_gaps_not_the_largest_error_bar():
    """One unresolved Δ₂ near Tc (± 115 meV) once stretched the axis to 175 meV and squeezed
    every point into its bottom sixth."""
    from daqapp.report.figures import gap_figure
    from daqapp.report.results import ReportData, Value

    data = ReportData()
    for t, d1, d2, e2 in ((3, 23.0, 6.0, 0.05), (30, 22.0, 5.8, 0.5), (65, 12.0, 2.0, 115.0)):
        empty = np.zeros(3)
        data.spectra.append(SpectrumResult(float(t), 0.0, empty, empty, empty, None, {
            "delta1_meV": Value(d1, 0.1, "meV"), "delta2_meV": Value(d2, e2, "meV")}))
    fig = gap_figure(data)
    ax = fig.axes[0]
    assert 23.0 < ax.get_ylim()[1] < 60.0
    assert any("cut" in t.get_text() for t in ax.texts)
