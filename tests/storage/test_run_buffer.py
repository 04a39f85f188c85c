"""RunBuffer: in-memory columns for plots — growth, views, threads."""

import threading

import numpy as np
import pytest

from daqapp.storage import RunBuffer


def test_growth_keeps_data_and_old_views_stay_valid():
    buf = RunBuffer({"v": "V", "g": "S"}, capacity=1024)
    for k in range(1000):
        buf.append({"v": k, "g": 2 * k})
    early = buf.snapshot()
    for k in range(1000, 5000):
        buf.append({"v": k})
    assert len(buf) == 5000
    np.testing.assert_array_equal(early["v"], np.arange(1000))
    snap = buf.snapshot()
    np.testing.assert_array_equal(snap["v"], np.arange(5000))
    assert np.isnan(snap["g"][1000:]).all()
    with pytest.raises(ValueError):
        snap["v"][0] = 1.0  # views are read-only: a plot cannot corrupt the data


def test_snapshot_is_a_view_not_a_copy():
    buf = RunBuffer(["a"])
    buf.extend({"a": k} for k in range(100))
    s1, s2 = buf.snapshot()["a"], buf.snapshot()["a"]
    assert np.shares_memory(s1, s2)
    np.testing.assert_array_equal(buf.tail(3)["a"], [97, 98, 99])


def test_concurrent_appends_lose_nothing():
    buf = RunBuffer(["k", "t"])

    def worker(t):
        for k in range(3000):
            buf.append({"k": k, "t": t})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    snap = buf.snapshot()
    assert len(buf) == 12000
    for t in range(4):
        np.testing.assert_array_equal(snap["k"][snap["t"] == t], np.arange(3000))


def test_unknown_column_request_names_it():
    with pytest.raises(KeyError, match="'x'"):
        RunBuffer(["a"]).column("x")


def test_clear_starts_a_new_generation_so_readers_drop_what_they_derived():
    buf = RunBuffer(["a"])
    buf.extend_columns({"a": np.arange(10.0)})
    before = (buf.generation, buf.version)
    buf.extend_columns({"a": np.arange(5.0)})
    assert buf.generation == before[0] and buf.version > before[1]
    buf.clear()
    assert buf.generation == before[0] + 1 and len(buf) == 0
