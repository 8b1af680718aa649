"""The engine's one exception."""


class UnsupportedError(Exception):
    """A fitted object the engine cannot compile (or a compiled model that does not match
    scikit-learn); the message says which. The model then stays on the scikit-learn path."""
