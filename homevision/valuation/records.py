"""Listings given as records (a dict of field -> value per listing: the API's parsed bodies), and
the frame read from them where a step needs one. Valuations and explanations read records
directly where they can: a frame costs a single listing's request more than half a millisecond."""

from __future__ import annotations

import numpy as np
import pandas as pd

from homevision.data.schema import MLS_ID

Records = list[dict[str, object]]


def records_frame(records: Records, columns: list[str]) -> pd.DataFrame:
    """Return the records as the frame of MLSNumber and `columns` (a field the records do not
    hold: all NaN; PoolYN as 1.0/0.0, as the export words it)."""
    given = records[0].keys() if records else {}
    frame = pd.DataFrame(
        {
            f: [r.get(f) for r in records] if f in given else np.nan
            for f in dict.fromkeys([MLS_ID, *columns])
        },
        index=pd.RangeIndex(len(records)),
    )
    if "PoolYN" in frame:
        frame["PoolYN"] = frame["PoolYN"].map({True: 1.0, False: 0.0})
    return frame


def as_frame(homes: pd.DataFrame | Records, columns: list[str]) -> pd.DataFrame:
    """Return `homes` as a frame: a frame as it is, records as records_frame(homes, columns)."""
    return homes if isinstance(homes, pd.DataFrame) else records_frame(homes, columns)


def field_values(homes: pd.DataFrame | Records, column: str) -> pd.Series | list:
    """Return `column` of `homes`: a frame's column, or the records' values in order (None where
    a record lacks it)."""
    if isinstance(homes, pd.DataFrame):
        return homes[column]
    return [r.get(column) for r in homes]
