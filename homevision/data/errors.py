"""The data layer's errors, importable without pandas (the CLI catches them before loading it)."""

from __future__ import annotations


class NotAnExportError(ValueError):
    """The file is not a listings export at all (empty, binary, wrong columns, undecodable)."""
