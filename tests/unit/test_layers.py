"""The house shows the split: a served model needs none of the training machinery."""

from __future__ import annotations

import subprocess
import sys


def test_valuation_never_imports_training():
    code = (
        "import sys, homevision.valuation.model, homevision.valuation.predict, "
        "homevision.serving.api; "
        "print(sorted(m for m in sys.modules if m.startswith('homevision.training')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
