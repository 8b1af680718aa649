"""The flow killed with SIGKILL at each op boundary, then run again (issue 23; flow_faults.py
says what is checked)."""

from __future__ import annotations

import pytest

from .flow_faults import OP_FAULTS, check_killed_then_completed

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("fault", OP_FAULTS)
def test_a_killed_run_is_completed_by_the_next_one(
    flow_template, flow_uninterrupted, tmp_path, fault
):
    check_killed_then_completed(flow_template, flow_uninterrupted, tmp_path, fault)
