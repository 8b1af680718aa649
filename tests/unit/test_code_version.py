"""The code a model was trained with, as the card and MLflow record it: the commit of a
homevision checkout, and the installed version otherwise, even inside another repository."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

from homevision import tracking


def _git(*args: str, cwd) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def _repo(path):
    path.mkdir(parents=True)
    _git("init", "-q", cwd=path)
    (path / "README.md").write_text("a user's project\n")
    _git("add", ".", cwd=path)
    _git("-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "first", cwd=path)
    return path


def test_an_installed_package_inside_a_users_repository_records_its_version(tmp_path, monkeypatch):
    user = _repo(tmp_path / "project")
    site = user / ".venv" / "lib" / "python3" / "site-packages" / "homevision"
    site.mkdir(parents=True)
    (user / "README.md").write_text("edited\n")  # the user's own change: not ours to report
    monkeypatch.setattr(tracking, "PACKAGE_DIR", site)
    assert tracking.git_commit() == f"homevision=={version('homevision')}"


def test_a_checkout_records_its_commit_and_whether_it_was_modified(tmp_path, monkeypatch):
    checkout = _repo(tmp_path / "homevision-src")
    monkeypatch.setattr(tracking, "PACKAGE_DIR", checkout / "homevision")
    sha = _git("rev-parse", "HEAD", cwd=checkout)
    assert tracking.git_commit() == sha
    (checkout / "README.md").write_text("changed\n")
    assert tracking.git_commit() == sha + "-dirty"
