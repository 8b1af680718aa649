"""The documented check of a history (defect 6): replaying the archived exports in the
manifest's order gives the manifest's SHA-256, rejected rows and all."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pandas as pd
from dagster import build_op_context

from homevision.data.listings import read_export
from homevision.data.synthetic import generate_listings, write_listings
from homevision.flow import intake as drop
from homevision.flow import pipeline
from homevision.flow.history import empty_manifest, merge_export, with_merges
from homevision.hashing import file_hash


class _Log:
    def info(self, text):
        pass

    warning = info


def test_replaying_the_archive_gives_the_manifest_sha256(tmp_path, monkeypatch):
    incoming, archive = tmp_path / "incoming", tmp_path / "incoming" / "archive"
    april = generate_listings(40, seed=1).astype(object)
    april.loc[3, "SqFtTotal"] = "-5"  # rejected
    april.loc[5, "StatusChangeTimestamp"] = "not a time"  # rejected by the flow's own rule
    may = generate_listings(40, seed=2).astype(object)
    may["MLSNumber"] = [str(30000000 + i) for i in range(40)]  # other listings than April's
    may.loc[7, "MLSNumber"] = may.loc[8, "MLSNumber"]  # listed twice: the newer row is merged
    write_listings(april, incoming / "2020-04.csv")
    write_listings(may, incoming / "2020-05.csv")

    monkeypatch.setattr(pipeline, "_log_mlflow", lambda *args, **kwargs: None)
    intake = pipeline.Intake(str(tmp_path / "staging"), "run")
    for verdict in drop.survey(incoming, settle_seconds=0, now=1e12):
        pipeline._sort(SimpleNamespace(log=_Log()), verdict, tmp_path / "staging", set(), intake)
    assert [e.rejected for e in intake.new] == [2, 0]
    merged = pipeline.merge_history(build_op_context(), intake).value
    manifest = with_merges(empty_manifest(), merged.entries, merged.history_sha256, 0)
    archive.mkdir()
    for export in intake.new:  # as the commit archives them (a name may carry its hash)
        shutil.copy2(export.copy, archive / f"{export.sha256[:8]}-{export.name}")

    history, sha = drop.replay_history(manifest, archive, tmp_path / "replay")
    assert sha == manifest["history_sha256"] and len(history) == merged.history_rows

    naive = pd.DataFrame()  # what the docs said before: merge the archived files as they are
    for entry, export in zip(manifest["merges"], intake.new, strict=True):
        naive, _ = merge_export(naive, read_export(export.copy), entry["snapshot"])
    assert file_hash(write_listings(naive, tmp_path / "naive.csv")) != sha
