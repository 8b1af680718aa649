"""The flow killed with SIGKILL inside the commit (after its journal, in the middle of the
history write, after each step), then run again (issue 23; flow_faults.py says what is
checked)."""

from __future__ import annotations

import pytest

from .flow_faults import COMMIT_FAULTS, check_killed_then_completed

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("fault", COMMIT_FAULTS)
def test_a_killed_run_is_completed_by_the_next_one(
    flow_template, flow_uninterrupted, tmp_path, fault
):
    check_killed_then_completed(flow_template, flow_uninterrupted, tmp_path, fault)
