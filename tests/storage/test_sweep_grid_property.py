"""Property: whatever the order of sweep indices, each sweep holds its points in order."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daqapp.storage import RunWriter, open_run

_counter = itertools.count()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sweeps=st.lists(st.one_of(st.integers(0, 5), st.just(None)), min_size=1, max_size=60))
def test_sweep_rows_hold_each_sweeps_points_in_order(tmp_path, sweeps):
    path = tmp_path / f"p{next(_counter)}.h5"
    w = RunWriter(path, procedure="p", columns={"v": "V", "temperature": "K", "sweep": ""},
                  sweep_axis="v", max_backlog=7)  # small backlog: many batch boundaries
    w.start()
    for k, s in enumerate(sweeps):
        w.append({"v": float(k), "temperature": 10.0 * (s or 0) + 1.0,
                  "sweep": float("nan") if s is None else s})
    w.finish()
    with open_run(path) as run:
        got = {sw.index: sw for sw in run.sweeps()}
        assert run.n_rows == len(sweeps)
        seg = run.sweep_segments()
    # the index holds maximal runs of one sweep, whatever the batch boundaries were
    runs = [(s, k) for k, s in enumerate(sweeps) if s is not None
            and (k == 0 or sweeps[k - 1] != s)]
    assert seg["sweep"].tolist() == [s for s, _ in runs]
    assert seg["offset"].tolist() == [k for _, k in runs]
    assert int(seg["length"].sum()) == sum(s is not None for s in sweeps)
    expected = {}
    for k, s in enumerate(sweeps):
        if s is not None:
            expected.setdefault(s, []).append(float(k))
    assert sorted(got) == sorted(expected)
    for s, values in expected.items():
        np.testing.assert_array_equal(got[s].columns["v"], values)
        assert got[s].n_points == len(values)
        assert got[s].temperature == pytest.approx(10.0 * s + 1.0)


def test_absurd_sweep_index_is_refused_naming_it(tmp_path):
    w = RunWriter(tmp_path / "r.h5", procedure="p", columns={"v": "V", "sweep": ""},
                  sweep_axis="v").start()
    with pytest.raises(ValueError, match="record sweep = -1"):
        w.append({"v": 1.0, "sweep": -1})
    with pytest.raises(ValueError, match="record sweep = 'a'"):
        w.append({"v": 1.0, "sweep": "a"})
    w.finish()
