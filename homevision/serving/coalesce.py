"""Dynamic batching on the event loop: requests that arrive together are valued in one call.

Why: one listing's valuation is a few hundred numpy calls on a one-row matrix, so it costs
nearly the same for one row as for ten. When several clients are waiting, a worker's event loop
parses their requests in one turn; `Coalescer` collects what those requests submit in that turn
and hands it to one call at the end of the turn, then routes each part of the answer back to
its request. A lone request waits for nothing: the call runs in the same turn of the loop.

This is the dynamic batching of model servers (Triton's dynamic batcher, Ray Serve's
`@serve.batch`), without their delay window: nothing waits for a batch to fill.

Measured and not kept: letting the loop turn twice more before the call joins more (3.2-3.8
listings per call at 8 clients on 2 workers, against 2.1-2.5), but a worker spinning through
those turns polls its sockets more often and wins the accepts of connections opened at once:
in 4 of 24 runs one worker held 7 or 8 of the 8 connections and the rate fell below the code
without joining.

Measured and not kept either: sharing keep-alive connections evenly between the workers. 8
connections opened at once split 7/1 or 8/0 in 13 of 15 tries (the worker that wakes first
accepts all that wait), and a worker holding more than its share could end one at a time with
`Connection: close` until the split was 4/4. Against the same code without it, alternating, 4
rounds at 8 clients: 2,308-2,744 req/s with it, 2,325-2,749 without. The busy worker joins
more requests per call, which makes up for the idle one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Columns = tuple[Sequence[Any], ...]


class Coalescer(Generic[Item]):
    """Collect `submit(key, items)` calls made in one turn of the event loop and answer them
    with one `call(key, items)` per key: `call` gets the submitted lists joined in arrival order
    and returns columns (a tuple of sequences: lists, arrays), each with one entry per item.
    Each submitter gets the same columns sliced to its own items, in order.

    Submissions with different keys (another model, another confidence level) never share a
    call. If a joined call raises, each submission of that call is retried alone, so a request
    can only fail on its own items. `call` runs on the event loop: keep it short (the API sends
    only small batches of the compiled engine here, a fraction of a millisecond each)."""

    def __init__(self, call: Callable[[Hashable, list[Item]], Columns]):
        self.call = call
        self._pending: dict[Hashable, list[tuple[list[Item], asyncio.Future]]] = {}
        self._scheduled = False
        self.calls = 0  # calls made: a test or a benchmark reads how much was joined

    async def submit(self, key: Hashable, items: list[Item]) -> Columns:
        """Return `call`'s results for `items`, computed with whatever else was submitted
        under `key` in this turn of the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.setdefault(key, []).append((items, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)  # after the requests already parsed in this turn
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, {}, False
        for key, parts in pending.items():
            self._answer(key, parts)

    def _answer(self, key: Hashable, parts: list[tuple[list[Item], asyncio.Future]]) -> None:
        """Make one call for `parts` and route the results; alone each, if the joined call fails."""
        joined = [item for items, _ in parts for item in items]
        try:
            self.calls += 1
            columns = self.call(key, joined)
            if any(len(column) != len(joined) for column in columns):
                lengths = [len(column) for column in columns]
                raise ValueError(f"columns of {lengths} entries for {len(joined)} items")
        except Exception as err:
            if len(parts) > 1:
                log.warning("A joined call of %d requests failed (%s); one by one", len(parts), err)
                for part in parts:
                    self._answer(key, [part])
            elif not parts[0][1].done():
                parts[0][1].set_exception(err)
            return
        if len(parts) == 1:  # alone in its turn: the columns as they are
            if not parts[0][1].done():
                parts[0][1].set_result(columns)
            return
        start = 0
        for items, future in parts:
            stop = start + len(items)
            if not future.done():  # a cancelled request (the client left) takes nothing
                future.set_result(tuple(column[start:stop] for column in columns))
            start = stop
