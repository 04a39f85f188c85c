"""The batch entry point: contacts' series as tasks; serial, local processes and a real dask
cluster give the same numbers; a failing spectrum is reported and the batch goes on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from daqapp.analysis.batch import (
    QUIET_WORKER_ENV,
    SeriesItem,
    SeriesTask,
    run_batch,
    series_tasks,
    worker_environment,
)
from daqapp.analysis.spectroscopy import AnalysisOptions, RawSpectrum
from tests.analysis.test_spectroscopy import TABLE3, write_run


def make_map(root, contacts=2, rows=TABLE3[:3:2]):
    """``contacts`` folders, each one contact's run with one spectrum per row of ``rows``."""
    for c in range(contacts):
        folder = root / f"contact{c}"
        folder.mkdir(parents=True)
        write_run(folder / "spectra.h5", rows, points=161, noise=0.002)
    return root


def flat(outcomes):
    return [(r.contact, r.file, r.sweep, r.temperature_K, r.model, r.values, r.errors, r.chi2,
             r.aic, r.error) for o in outcomes for r in o.rows()]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    root = make_map(tmp_path_factory.mktemp("map"))
    tasks, notes = series_tasks([root])
    serial = run_batch(tasks)
    return root, tasks, notes, serial


def test_a_folder_is_a_contact_and_its_series_is_one_task(mapped):
    _, tasks, notes, serial = mapped
    assert notes == []
    assert sorted(t.contact for t in tasks) == ["contact0", "contact1"]
    assert [len(t) for t in tasks] == [2, 2]
    for outcome in serial:
        assert all(e == "" for e in outcome.errors)
        assert [round(a.temperature_K) for a in outcome.analyses] == [3, 10]
        # Δ(T) per contact, from the gap each spectrum was fitted with
        assert list(outcome.gaps.temperature_K) == [3.0, 10.0]
        assert outcome.gaps.delta1 == pytest.approx([23.0, 23.0], rel=0.05)


def test_local_processes_give_bit_identical_results(mapped):
    _, tasks, _, serial = mapped
    seen = []
    parallel = run_batch(tasks, jobs=2, progress=seen.append)
    assert flat(parallel) == flat(serial)
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == 4
    assert seen[-1].eta_s == 0 and seen[-1].rate > 0


def test_a_failing_spectrum_is_reported_and_the_series_goes_on():
    good = write_free_spectrum()
    broken = RawSpectrum(np.array([1.0, 2.0, 3.0]), np.array([np.nan, 1.0, 1.0]),
                         temperature_K=5.0, label="broken", sweep=7)
    options = AnalysisOptions(models=("s",))
    task = SeriesTask("c", [SeriesItem(broken, options, "b.h5"), SeriesItem(good, options,
                                                                          "g.h5")])
    outcome = run_batch([task])[0]
    rows = outcome.rows()
    assert rows[0].file == "b.h5" and rows[0].sweep == 7 and rows[0].error
    assert np.isnan(rows[0].chi2)
    assert rows[1].error == "" and rows[1].values["delta1"] == pytest.approx(2.0, rel=0.1)


def write_free_spectrum():
    from daqapp.analysis.btk import Gap, conductance

    v = np.linspace(-10, 10, 201)
    g = conductance(v, 2.0, [Gap(2.0, 0.3, 0.6)])
    g = g * (1 + 0.002 * np.random.default_rng(1).standard_normal(v.size))
    return RawSpectrum(v, g, temperature_K=2.0, label="good", sweep=0, normalized=True)


def test_workers_do_not_inherit_the_malloc_trim_threshold(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited: the parent's BLAS threads
    with worker_environment():
        env = subprocess.run([sys.executable, "-c", "import os; print("
                              "os.environ.get('MALLOC_TRIM_THRESHOLD_'), "
                              "os.environ.get('OMP_NUM_THREADS'))"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert env == ["None", "1"]
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_dask_scheduler_and_two_workers_give_the_same_numbers(mapped):
    pytest.importorskip("distributed", reason="dask.distributed not installed (the test "
                                              "extra installs it)")
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    # workers started as any cluster starts them: with a nanny (MALLOC_TRIM_THRESHOLD_ set);
    # the first as the README advises, the second with dask's defaults
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for key in QUIET_WORKER_ENV:
        env.pop(key, None)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0", "--no-show"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for worker_env in ({**env, **QUIET_WORKER_ENV}, env):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                           address, "--nthreads", "1", "--host", "127.0.0.1",
                                           "--dashboard-address", ":0", "--no-dashboard"],
                                          env=worker_env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
        _, tasks, _, serial = mapped
        notes: list[str] = []
        assert flat(run_batch(tasks, scheduler=address, note=notes.append)) == flat(serial)
        # the default-configured worker is named, with the environment that quiets it
        assert len(notes) == 1 and notes[0].startswith("1 of 2 workers")
        assert all(f"{k}={v}" in notes[0] for k, v in QUIET_WORKER_ENV.items())
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_an_interrupt_cancels_the_batch_and_stops_the_workers(mapped):
    import multiprocessing

    _, tasks, _, _ = mapped
    more = [SeriesTask(f"{t.contact}-{k}", t.items) for k in range(3) for t in tasks]

    def interrupt(p):
        if p.done:  # the first series is back: the user presses Ctrl-C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(more, jobs=2, progress=interrupt)
    # no worker is left fitting the cancelled series
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_the_report_gives_the_batch_numbers_for_a_contacts_folder(mapped):
    from daqapp.report.analyse import ReportOptions, analyse_spectra
    from daqapp.report.results import ReportData

    root, tasks, _, serial = mapped
    task = next(k for k, t in enumerate(tasks) if t.contact == "contact0")
    data = ReportData()
    analyse_spectra([root / "contact0" / "spectra.h5"], ReportOptions(), data)
    report = [(s.temperature_K, s.parameters["delta1_meV"].value,
               s.parameters["delta2_meV"].value) for s in data.spectra]
    batch = [(r.temperature_K, r.values["delta1"], r.values["delta2"])
             for r in serial[task].rows()]
    assert report == batch


# ----------------------------------------------------------------------- engines and workers

_FAULTS_PER_ALLOCATION = """
import resource, sys
import numpy as np
from daqapp.analysis.batch import restore_malloc_thresholds
applied = restore_malloc_thresholds() if sys.argv[1] == "restore" else False
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        a = np.ones(1_000_000)   # 8 MB, the size of a BTK energy x bias grid
        del a
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40
faults()
print(applied, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_a_nanny_malloc_threshold_no_longer_maps_every_grid_anew(monkeypatch):
    """dask's MALLOC_TRIM_THRESHOLD_=65536 fixes glibc's mmap threshold at 128 KiB: every
    8 MB array is mmapped and page-faulted in again (~100 faults with transparent huge pages,
    ~2000 without). Restored, glibc reuses the freed memory: no faults."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")

    def run(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_ALLOCATION, mode],
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0] == "True", float(out[1])

    applied_before, as_dask_leaves_it = run("keep")
    applied, restored = run("restore")
    assert not applied_before and applied
    assert as_dask_leaves_it > 50        # the pages, faulted in anew on every allocation
    assert restored < 5
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    applied, default = run("restore")    # a process started without it: nothing to undo
    assert not applied and default < 5


def test_local_cluster_workers_inherit_this_process_environment(monkeypatch):
    pytest.importorskip("distributed", reason="dask.distributed not installed (the test "
                                              "extra installs it)")
    from daqapp.analysis.batch import local_cluster, wakes_for_dask

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # dask's nanny would set 1
    with local_cluster(2) as client:
        seen = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                   os.environ.get("OMP_NUM_THREADS")))
        woken = client.run(wakes_for_dask)
    assert list(seen.values()) == [(None, "3"), (None, "3")]
    # no profiler sampling and no fast tick in the fitting workers (QUIET_WORKER_CONFIG)
    assert list(woken.values()) == [False, False]
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"


def test_without_dask_jobs_runs_a_process_pool_with_the_same_numbers(mapped, monkeypatch):
    _, tasks, _, serial = mapped
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    assert flat(run_batch(tasks, jobs=2)) == flat(serial)


def test_shared_fs_tasks_name_files_and_workers_read_them(mapped, tmp_path):
    from daqapp.analysis.batch import FileSeriesTask

    root, _, _, serial = mapped
    (root / "contact1" / "broken.h5").write_bytes(b"not an HDF5 file")
    try:
        tasks, notes = series_tasks([root], shared_fs=True)
        assert notes == [] and all(isinstance(t, FileSeriesTask) for t in tasks)
        assert all(Path(p).is_absolute() for t in tasks for p in t.paths)
        seen = []
        outcomes = run_batch(tasks, jobs=2, progress=seen.append)
    finally:
        (root / "contact1" / "broken.h5").unlink()
    assert seen[-1].unit == "files" and seen[-1].done == seen[-1].total == 3
    assert flat(outcomes) == flat(serial)
    assert [n for o in outcomes for n in o.notes] and all(
        "broken.h5" in n for o in outcomes for n in o.notes)


def test_a_lost_worker_task_runs_again_on_another(tmp_path):
    pytest.importorskip("distributed", reason="dask.distributed not installed (the test "
                                              "extra installs it)")
    # importable by the workers under this name (this test module's own name is not)
    from tests.analysis._worker_faults import KillsItsFirstWorker

    marker = str(tmp_path / "died")
    options = AnalysisOptions(models=("s",))
    raw = write_free_spectrum()
    tasks = [SeriesTask("dies", [SeriesItem(KillsItsFirstWorker(marker, raw, os.getpid()), options,
                                            "x.h5")]),
             SeriesTask("lives", [SeriesItem(raw, options, "y.h5")])]
    outcomes = run_batch(tasks, jobs=2)
    assert os.path.exists(marker)           # a worker did die on the first task
    assert [o.contact for o in outcomes] == ["dies", "lives"]
    assert outcomes[0].errors == [""]
    assert outcomes[0].rows()[0].values == outcomes[1].rows()[0].values
