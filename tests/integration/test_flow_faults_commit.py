"""The flow killed with SIGKILL inside the commit (after its journal, in the middle of the
history write, after each step), then run again (issue 23; flow_faults.py says what is
checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .flow_faults import (
    COMMIT_FAULTS,
    check_killed_then_completed,
    make_template,
    run_uninterrupted,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture(scope="module")
def uninterrupted(template, tmp_path_factory) -> bytes:
    return run_uninterrupted(template, tmp_path_factory)


@pytest.mark.parametrize("fault", COMMIT_FAULTS)
def test_a_killed_run_is_completed_by_the_next_one(template, uninterrupted, tmp_path, fault):
    check_killed_then_completed(template, uninterrupted, tmp_path, fault)
