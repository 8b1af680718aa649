"""Fault injection for the flow's crash tests: `failpoint(name)` kills this process with
SIGKILL when HOMEVISION_FLOW_FAULT names that point (a test sets it for one `flow run`). Free
when the variable is unset: one dictionary lookup.

Points: after:pick_up, after:merge_history, after:check_drift, after:retrain (op boundaries),
commit:journal, commit:history-half (in the middle of writing the history), commit:history,
commit:manifest, commit:files, commit:alias.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "HOMEVISION_FLOW_FAULT"


def failpoint(name: str) -> None:
    """Die here, at once and without cleanup, when the fault variable names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
