"""The metrics' parts that need no model: the shared folder of a multi-worker server, bulk price
observations, dead workers' gauges, refusal reasons."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from homevision.serving.app import METRICS_DIR_ENV, multiprocess_metrics
from homevision.serving.metrics import PRICE_BUCKETS, forget_dead_workers, observe_many
from homevision.valuation.predict import refusal_reason


def test_several_workers_get_a_fresh_folder_removed_at_exit(monkeypatch):
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    with multiprocess_metrics(2) as folder:
        assert folder is not None and folder.is_dir() and not any(folder.iterdir())
        assert os.environ[METRICS_DIR_ENV] == str(folder)
        (folder / "counter_123.db").write_bytes(b"x")
    assert not folder.exists() and METRICS_DIR_ENV not in os.environ


def test_one_worker_keeps_metrics_in_memory(monkeypatch):
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    with multiprocess_metrics(1) as folder:
        assert folder is None and METRICS_DIR_ENV not in os.environ


def test_a_folder_the_user_names_is_emptied_of_metric_files_and_kept(tmp_path, monkeypatch):
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_999.db").write_bytes(b"an earlier server's counts")
    (given / "gauge_livesum_998.db").write_bytes(b"an earlier server's gauge")
    (given / "notes.txt").write_text("not ours")
    (given / "mlflow.db").write_bytes(b"the tracking store")  # issue 22, defect 7
    (given / "counter.db").write_bytes(b"not a prometheus_client name either")
    monkeypatch.setenv(METRICS_DIR_ENV, str(given))
    for workers in (1, 3):
        with multiprocess_metrics(workers) as folder:
            assert folder == given
            assert sorted(p.name for p in given.glob("*.db")) == ["counter.db", "mlflow.db"]
            (given / "counter_1000.db").write_bytes(b"this server's")
    assert (given / "notes.txt").exists() and os.environ[METRICS_DIR_ENV] == str(given)
    assert (given / "mlflow.db").read_bytes() == b"the tracking store"


def test_observe_many_matches_one_observe_per_value():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.lognormal(12.8, 0.6, 500), np.array(PRICE_BUCKETS), [0.0, 9e9]]  # bounds: <= le
    )
    one_by_one = Histogram("one", "x", buckets=PRICE_BUCKETS, registry=CollectorRegistry())
    bulk = Histogram("bulk", "x", buckets=PRICE_BUCKETS, registry=CollectorRegistry())
    for value in values:
        one_by_one.observe(float(value))
    observe_many(bulk, values)

    def samples(histogram):
        (family,) = histogram.collect()
        return [
            (s.name.split("_", 1)[1], s.labels, s.value)
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert [s[:2] for s in samples(bulk)] == [s[:2] for s in samples(one_by_one)]
    np.testing.assert_allclose(
        [s[2] for s in samples(bulk)], [s[2] for s in samples(one_by_one)], rtol=1e-12
    )


def test_a_dead_workers_live_gauges_are_dropped(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(gone.stdout)
    files = {
        "dead_gauge": tmp_path / f"gauge_livemax_{dead}.db",
        "dead_min": tmp_path / f"gauge_livemin_{dead}.db",
        "dead_counter": tmp_path / f"counter_{dead}.db",  # counts outlive their worker
        "live_gauge": tmp_path / f"gauge_livemax_{os.getpid()}.db",
    }
    for path in files.values():
        path.write_bytes(b"")
    assert forget_dead_workers(str(tmp_path)) == [dead]
    assert {name for name, path in files.items() if path.exists()} == {
        "dead_counter",
        "live_gauge",
    }


def test_refusal_reasons():
    assert refusal_reason("valuation $9 is outside what this model supports ($1 to $2)") == (
        "unsupported"
    )
    assert refusal_reason("the model returned no finite valuation for these values") == "failed"
    assert refusal_reason("could not be valued: the model cannot use these values") == "failed"
