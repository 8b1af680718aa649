"""Two trains at once against the team's server (issue 22, defect 12): the champion moves by
compare-and-set, and two first registrations of a name both succeed."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from mlflow.tracking import MlflowClient

from homevision import tracking

pytestmark = [pytest.mark.server]


def _versions(client: MlflowClient, name: str, count: int) -> list[str]:
    """Register `count` versions of a new model `name` (small artifacts: the registry does not
    look inside); return their numbers."""
    experiment = client.get_experiment_by_name("homevision-races")
    exp_id = (
        experiment.experiment_id if experiment else client.create_experiment("homevision-races")
    )
    client.create_registered_model(name)
    versions = []
    for i in range(count):
        run = client.create_run(exp_id).info.run_id
        client.log_text(run, f"model {i}", "model/MLmodel")
        versions.append(client.create_model_version(name, f"runs:/{run}/model", run_id=run).version)
    return [str(v) for v in versions]


def _slowed(monkeypatch, name: str, seconds: float = 0.5) -> None:
    """Make reading `name` from the registry slow, so two callers interleave."""
    original = getattr(tracking, name) if hasattr(tracking, name) else None
    if name == "champion":

        def slow(*args, **kwargs):
            found = original(*args, **kwargs)
            time.sleep(seconds)
            return found

        monkeypatch.setattr(tracking, "champion", slow)
    else:
        real = MlflowClient.get_registered_model

        def slow_get(self, *args, **kwargs):
            time.sleep(seconds)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, "get_registered_model", slow_get)


def _together(*calls) -> list:
    """Run the calls in threads at once; return their results (an exception as a result)."""
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            results[i] = call()
        except Exception as err:
            results[i] = err

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("lock", ["advisory", "file"])
def test_two_trains_deciding_on_the_same_champion_move_it_once(
    tracking_server, optuna_postgres, monkeypatch, lock
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    if lock == "advisory":
        monkeypatch.setenv("HOMEVISION_OPTUNA_STORAGE", optuna_postgres)
    client = MlflowClient(tracking_server)
    name = f"homevision-race-{uuid.uuid4().hex[:8]}"
    first, second, third = _versions(client, name, 3)
    client.set_registered_model_alias(name, tracking.CHAMPION, first)
    _slowed(monkeypatch, "champion")
    moved = _together(
        lambda: tracking.set_champion(second, name, expected=first),
        lambda: tracking.set_champion(third, name, expected=first),
    )
    assert sorted(moved) == [False, True], moved
    winner = second if moved[0] else third
    assert client.get_model_version_by_alias(name, tracking.CHAMPION).version == winner


def test_two_first_registrations_of_a_name_both_succeed(tracking_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("homevision-races") or None
    exp_id = (
        experiment.experiment_id if experiment else client.create_experiment("homevision-races")
    )
    runs = []
    for i in range(2):
        run = client.create_run(exp_id).info.run_id
        client.log_text(run, f"model {i}", "model/MLmodel")
        runs.append(run)
    name = f"homevision-first-{uuid.uuid4().hex[:8]}"
    _slowed(monkeypatch, "get_registered_model")  # both look before either creates
    registered = _together(
        *(lambda run=run: tracking.register(f"runs:/{run}/model", run, {}, name) for run in runs)
    )
    assert sorted(registered) == ["1", "2"], registered


def test_two_first_trains_on_a_fresh_server_both_get_the_experiment(tracking_server, monkeypatch):
    """Two commands starting at once on a server without the experiment (two `homevision tune`
    workers, a train beside a tune) both looked it up, found none and created it: the second
    stopped with RESOURCE_ALREADY_EXISTS. Both now get the one experiment."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    name = f"homevision-fresh-{uuid.uuid4().hex[:8]}"
    real = mlflow.get_experiment_by_name

    def slow(experiment_name):
        found = real(experiment_name)
        time.sleep(0.5)  # both look before either creates
        return found

    monkeypatch.setattr(mlflow, "get_experiment_by_name", slow)
    got = _together(lambda: tracking.configure(name), lambda: tracking.configure(name))
    assert all(isinstance(g, str) for g in got) and got[0] == got[1], got
    assert MlflowClient(tracking_server).get_experiment_by_name(name).experiment_id == got[0]
