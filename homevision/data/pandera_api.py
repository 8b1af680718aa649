"""pandera's pandas API, imported without pandera's side trip into pyspark.pandas.

pandera's package initialiser imports `pyspark.pandas` whenever pyspark is installed (to register
the pandas-on-Spark types, pandera/external_config.py), even for `import pandera.pandas`, and its
built-in checks try again on the first validate. With pandas 3 that import fails (pandera
catches the ImportError) after about 0.4 s and after pyspark has printed a FutureWarning
("PySpark does not yet fully support pandas >= 3.0.0") on every command and in every worker.
homevision validates pandas frames only (the Spark path validates each Arrow batch as pandas),
so pandera and its built-in checks are imported here while `pyspark.pandas` is marked
unavailable; pyspark itself, Spark SQL and a later `import pyspark.pandas` are untouched.
"""

from __future__ import annotations

import sys
from types import ModuleType


def _import_pandera_pandas() -> ModuleType:
    """Return `pandera.pandas`, imported while `pyspark.pandas` cannot be (unless it already is)."""
    blocked = "pyspark.pandas" not in sys.modules
    if blocked:
        sys.modules["pyspark.pandas"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        # builtin_checks is the module that retries pyspark.pandas on the first validate.
        import pandera.backends.pandas.builtin_checks
        import pandera.pandas
    finally:
        if blocked and sys.modules.get("pyspark.pandas", 0) is None:
            del sys.modules["pyspark.pandas"]
    return pandera.pandas


pa = _import_pandera_pandas()
