"""The CLI's consoles and log handler: rich in a terminal, plain unwrapped lines elsewhere.

Rich assumes 80 columns when output is not a terminal (a log file, CI, a pipe), so sentences
broke mid-path and tables cut candidate names. Here a console that does not write to a terminal
never wraps or crops (unless COLUMNS says how wide it may be), and log records become one plain
line each.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console, ConsoleDimensions

# Wide enough that no table or sentence is ever folded, and narrower than rich's own ceiling.
UNWRAPPED_WIDTH = 10_000
PLAIN_DATE_FORMAT = "%H:%M:%S"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def make_console(stderr: bool = False) -> Console:
    """Return a rich Console for stdout (or stderr) that uses the terminal's width, COLUMNS
    when set, and otherwise never wraps, so a one-sentence error stays on one line in a log."""
    return _AdaptiveConsole(stderr=stderr)


class _AdaptiveConsole(Console):
    """A Console that decides at each print whether its stream is a terminal (test runners and
    `typer.testing` swap sys.stdout after the console is made): unwrapped when it is not."""

    def _unwrapped(self) -> bool:
        return not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit()

    @property
    def size(self) -> ConsoleDimensions:
        if self._unwrapped():
            return ConsoleDimensions(UNWRAPPED_WIDTH, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    @property
    def soft_wrap(self) -> bool:
        return self._unwrapped()

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:  # Console.__init__ assigns it; decided per print
        pass


def stderr_is_terminal() -> bool:
    """True when stderr is a terminal (where progress bars and rich log lines belong)."""
    return _is_terminal(sys.stderr)


def log_handler() -> logging.Handler:
    """Return the handler for the CLI's log records on stderr: rich's in a terminal, else one
    plain line per record (time, level, message) that is never wrapped or padded."""
    if stderr_is_terminal():
        from rich.logging import RichHandler

        return RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter())
    return handler


class PlainFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL message`, with `[logger]` before the message of a record from another
    library than homevision, so a log says whose line it is."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(origin)s%(message)s", PLAIN_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == "homevision" or record.name.startswith("homevision.")
        record.origin = "" if ours else f"[{record.name}] "
        return super().format(record)
