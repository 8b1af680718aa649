"""Why a model reference gives no model to use (light: no MLflow import)."""


class ModelNotFoundError(LookupError):
    """A model reference that does not resolve to a logged model that may be used."""


class UnverifiedModelError(ModelNotFoundError):
    """A model whose artifacts are unsigned, or differ from what was signed: every command
    that reports a missing model reports this one the same way, in its sentence."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """Return an error's first line (at most `limit` characters), or its type's name when
    empty: the reason a one-sentence refusal carries."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
