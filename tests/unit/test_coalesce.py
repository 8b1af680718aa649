"""serving.coalesce: what is submitted in one turn of the event loop is answered by one call."""

from __future__ import annotations

import asyncio

import pytest

from homevision.serving.coalesce import Coalescer


def squares(calls: list):
    """A call that records what it was given and answers each item with its square."""

    def call(key, items):
        calls.append((key, list(items)))
        if "boom" in items:
            raise ValueError("boom")
        return ([item * item for item in items],)

    return call


def test_submissions_of_one_turn_share_one_call_and_get_their_own_results():
    calls: list = []
    joiner = Coalescer(squares(calls))

    async def main():
        return await asyncio.gather(
            joiner.submit("m", [1, 2]), joiner.submit("m", [3]), joiner.submit("m", [4, 5, 6])
        )

    assert asyncio.run(main()) == [([1, 4],), ([9],), ([16, 25, 36],)]
    assert calls == [("m", [1, 2, 3, 4, 5, 6])] and joiner.calls == 1


def test_a_lone_submission_is_answered_without_waiting_for_company():
    calls: list = []
    joiner = Coalescer(squares(calls))

    async def main():
        first = await joiner.submit("m", [2])
        second = await joiner.submit("m", [3])
        return first, second

    assert asyncio.run(main()) == (([4],), ([9],))
    assert calls == [("m", [2]), ("m", [3])]


def test_different_keys_never_share_a_call():
    calls: list = []
    joiner = Coalescer(squares(calls))

    async def main():
        return await asyncio.gather(
            joiner.submit(("v1", 0.9), [1]),
            joiner.submit(("v2", 0.9), [2]),
            joiner.submit(("v1", 0.8), [3]),
            joiner.submit(("v1", 0.9), [4]),
        )

    assert asyncio.run(main()) == [([1],), ([4],), ([9],), ([16],)]
    assert sorted(calls) == [(("v1", 0.8), [3]), (("v1", 0.9), [1, 4]), (("v2", 0.9), [2])]


def test_a_failing_joined_call_is_retried_alone_so_only_the_bad_submission_fails():
    calls: list = []
    joiner = Coalescer(squares(calls))

    async def main():
        return await asyncio.gather(
            joiner.submit("m", [1]),
            joiner.submit("m", ["boom"]),
            joiner.submit("m", [3]),
            return_exceptions=True,
        )

    first, bad, third = asyncio.run(main())
    assert first == ([1],) and third == ([9],)
    assert isinstance(bad, ValueError) and str(bad) == "boom"
    assert calls[0] == ("m", [1, "boom", 3]) and len(calls) == 4


def test_a_call_that_answers_the_wrong_number_of_items_fails_the_submission():
    joiner = Coalescer(lambda key, items: (items, items[:-1]))

    with pytest.raises(ValueError, match=r"columns of \[2, 1\] entries for 2 items"):
        asyncio.run(joiner.submit("m", [1, 2]))


def test_a_cancelled_submission_does_not_stop_the_others():
    calls: list = []
    joiner = Coalescer(squares(calls))

    async def main():
        gone = asyncio.ensure_future(joiner.submit("m", [7]))
        kept = asyncio.ensure_future(joiner.submit("m", [8]))
        await asyncio.sleep(0)  # both are queued for this turn's call
        gone.cancel()
        return await kept, gone.cancelled()

    assert asyncio.run(main()) == (([64],), True)
