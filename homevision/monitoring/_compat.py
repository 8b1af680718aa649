"""Import Evidently under pandas 3.

Evidently 0.7.23 imports `pandas.core.dtypes.common.infer_dtype_from_object`, which pandas 3
removed; nothing else it uses is missing (its reports run under pandas 3 in our tests). Until
Evidently drops the import, give pandas that name back, with the meaning it had: the scalar type
of a dtype. tests/unit/test_monitoring.py fails once the shim is no longer needed, so it goes.
"""

from __future__ import annotations

import pandas as pd
import pandas.core.dtypes.common as _common


def _infer_dtype_from_object(dtype) -> type:
    """Return the scalar type of `dtype` (pandas 2's infer_dtype_from_object, enough here)."""
    return pd.api.types.pandas_dtype(dtype).type


def shim_needed() -> bool:
    """Return whether this pandas lacks the name Evidently imports."""
    return not hasattr(_common, "infer_dtype_from_object")


def import_evidently():
    """Import and return the evidently package, shimming pandas first when it needs it."""
    if shim_needed():
        _common.infer_dtype_from_object = _infer_dtype_from_object
    import evidently

    return evidently
