"""Fetch and check a registered model in a second process while this one starts up.

Before a byte of a model moves, resolving its reference through MLflow costs about 2 s of
imports (MLflow, then its SQL store); a command that values listings also spends 1–2 s
importing scikit-learn and reading its export. `start_fetch` runs `tracking.fetch_model`
(resolve, download, check the signature) in a child interpreter, and `ModelFetch.model` loads
the checked folder with `model_files.load_local`, which needs no MLflow: the two start-ups
overlap on two cores, and the command itself never imports MLflow. Errors are the ones
`tracking.load_model` raises, with the same sentences.

Run as `python -m homevision.model_fetch REF FOLDER`, it prints one JSON line: the checked
folder, or the error's kind and sentence.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from homevision.model_errors import ModelNotFoundError, UnverifiedModelError
from homevision.model_files import load_local, unloadable_model
from homevision.service_secrets import SecretFileError

_ERRORS = {
    "unverified": UnverifiedModelError,
    "missing": ModelNotFoundError,
    "secret": SecretFileError,  # a secret file others can read: its own sentence
}


class ModelFetch:
    """A model reference being fetched and checked by a child process; `model()` waits for it
    and returns the ValuationModel. Use it as a context manager: leaving stops the child and
    removes the downloaded files, whether or not the model was asked for."""

    def __init__(self, ref: str | None):
        self.ref = ref
        self._folder = tempfile.TemporaryDirectory(prefix="homevision-model-")
        self.folder = Path(self._folder.name)  # where the child downloads the model
        self._model = None
        self._reply: dict[str, str] | None = None  # the child's JSON line
        command = [sys.executable, "-m", __name__, ref or "", str(self.folder)]
        try:
            # A process group of its own: the terminal's Ctrl-C goes to the command's group
            # only, and the command stops the child (close). In the command's group, a Ctrl-C
            # during the child's first imports printed their KeyboardInterrupt traceback.
            self.process: subprocess.Popen | None = subprocess.Popen(
                command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                process_group=0,
            )  # fmt: skip
        except OSError:  # no second process here: fetch in this one when asked
            self.process = None

    def model(self):
        """Return the fitted ValuationModel behind the reference; raise ModelNotFoundError
        (UnverifiedModelError for a signature that does not hold) as tracking.load_model does,
        SecretFileError for a services secret that others can read."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        if self.process is None:
            from homevision.tracking import load_model

            return load_model(self.ref)
        if self._reply is None:  # the child answers once: a second ask re-reads it
            out, _ = self.process.communicate()
            lines = out.strip().splitlines()
            if not lines:
                raise RuntimeError(
                    f"fetching the model {self.ref or 'champion'} stopped (exit code "
                    f"{self.process.returncode}); its error is above"
                )
            self._reply = json.loads(lines[-1])
        reply = self._reply
        if "error" in reply:
            raise _ERRORS[reply["kind"]](reply["error"])
        try:
            return load_local(reply["folder"])
        except Exception as err:  # found, but it does not load here: load_model's sentence
            raise ModelNotFoundError(
                unloadable_model(reply["uri"], Path(reply["folder"]), err)
            ) from None

    def close(self) -> None:
        """Stop the child if it still runs and remove what it downloaded."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        self._folder.cleanup()

    def __enter__(self) -> ModelFetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Fetched:
    """A model already in hand, with ModelFetch's face (for callers and tests that have one)."""

    def __init__(self, model):
        self._model = model

    def model(self):
        return self._model

    def close(self) -> None:
        """Nothing to stop or remove."""

    def __enter__(self) -> Fetched:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_fetch(ref: str | None) -> ModelFetch | Fetched:
    """Return a fetch of the model behind `ref`, already started in a child process."""
    return ModelFetch(ref)


def _answer(ref: str | None, folder: Path) -> dict[str, str]:
    """Return what the child reports: the checked folder and the sentence for a folder that
    does not load, or the kind and sentence of the error that stopped the fetch."""
    from homevision.tracking import fetch_model, resolve_model_uri

    try:
        local = fetch_model(ref, folder)
    except UnverifiedModelError as err:
        return {"kind": "unverified", "error": str(err)}
    except ModelNotFoundError as err:
        return {"kind": "missing", "error": str(err)}
    except SecretFileError as err:
        return {"kind": "secret", "error": str(err)}
    return {"folder": str(local), "uri": resolve_model_uri(ref)}


def main(argv: list[str]) -> int:
    """Fetch argv's reference into argv's folder and print the answer as one JSON line."""
    from homevision.logging_setup import setup_logging

    setup_logging()
    ref, folder = argv
    answer = _answer(ref or None, Path(folder))
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # ModelFetch starts this child in a process group of its own, out of the terminal's
    # Ctrl-C; run another way (by hand, in a shell script), the parent still stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main(sys.argv[1:]))
