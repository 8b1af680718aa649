"""MkDocs hooks (mkdocs.yml `hooks:`): the reference pages written at build time from the code
and from a real training run, so the site cannot drift from what the project does.

- `reference/cli.md`: Typer's own docs generator run on the app
  (`typer homevision.cli utils docs`).
- `reference/openapi.json`: the REST API's OpenAPI spec from the FastAPI app factory, rendered
  by Swagger UI (bundled in mkdocs-swagger-ui-tag: nothing is fetched at build or view time).
- `reference/model-card.md` and its figures: the card `homevision train` wrote into
  `reports/` when this checkout has one; otherwise the card of a short `homevision train
  --budget HOMEVISION_DOCS_BUDGET` (default 40 s) on the default data, run in a project folder
  of its own under `build/docs-card/` and kept there for later builds of the same data,
  parameters and code.
- `assets/screenshots/*.png`: nothing is generated; they come from the browser test
  (`make screenshots`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.homevision")
ROOT = Path(__file__).resolve().parents[1]
CARD_FIGURES = ("shap_summary.png", "leaderboard.png", "predicted_vs_actual.png", "residuals.png")


def on_files(files: Files, config) -> Files:
    """Add the generated reference pages to the site's files."""
    pages: dict[str, str | bytes] = {
        "reference/cli.md": cli_reference(),
        "reference/openapi.json": openapi_spec(),
        **model_card(),
    }
    for path, content in pages.items():
        files.append(File.generated(config, path, content=content))
    return files


def _python(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    """Run the project's Python with `args`; return its stdout or raise with its output."""
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def cli_reference() -> str:
    """The CLI reference, as Typer documents the app."""
    text = _python("-m", "typer", "homevision.cli", "utils", "docs", "--name", "homevision")
    body = text.split("\n", 1)[1]  # Typer's title line names the program; the page has its own
    return (
        "# CLI reference\n\n"
        "Generated at build time from the Typer app (`typer homevision.cli utils docs`); "
        "`homevision COMMAND --help` prints the same.\n" + body
    )


def openapi_spec() -> str:
    """The REST API's OpenAPI document (no model is loaded to write it)."""
    from homevision.serving.api import create_app

    return json.dumps(create_app().openapi(), indent=2)


def model_card() -> dict[str, str | bytes]:
    """The model card page and its figures: reports/ when a training run published one there,
    else a short training run's (cached under build/docs-card/)."""
    from homevision.config import paths

    reports = paths().reports
    note = (
        "The card of the latest `homevision train` in this checkout (`reports/model_card.md`); "
        "every training run writes one and logs it to its MLflow run."
    )
    if not (reports / "model_card.md").exists():
        reports = _short_training_run()
        note = (
            "This checkout had no `reports/model_card.md`, so the docs build trained a model "
            f"itself: `homevision train --budget {_budget():.0f}` on `{_data_path().name}`, a "
            "short budget, so the card lists what was trimmed to fit. `make train` and then "
            "`make docs` show the card of the full procedure."
        )
    card = (reports / "model_card.md").read_text(encoding="utf-8")
    title, _, rest = card.partition("\n")
    page = f'{title}\n\n!!! note "Where this card comes from"\n    {note}\n{rest}'
    pages: dict[str, str | bytes] = {"reference/model-card.md": page}
    for name in CARD_FIGURES:
        if (reports / name).exists():
            pages[f"reference/{name}"] = (reports / name).read_bytes()
    return pages


def _budget() -> float:
    return float(os.environ.get("HOMEVISION_DOCS_BUDGET", "40"))


def _data_path() -> Path:
    """The checkout's default data, as every command finds it."""
    from homevision.data.sources import resolve_data_path

    return resolve_data_path().resolve()


def _short_training_run() -> Path:
    """Train in build/docs-card/KEY (KEY: the data, params.yaml, the package's code and the
    budget) unless that folder already holds a card; return its reports/ folder."""
    from homevision.config import params_file

    data, budget = _data_path(), _budget()
    digest = hashlib.sha256(str(budget).encode())
    for path in [data, params_file(), *sorted((ROOT / "homevision").rglob("*.py"))]:
        digest.update(path.read_bytes())
    home = ROOT / "build" / "docs-card" / digest.hexdigest()[:16]
    reports = home / "reports"
    if (reports / "model_card.md").exists():
        log.info("Model card: reusing %s", reports)
        return reports
    home.mkdir(parents=True, exist_ok=True)
    log.info("Model card: training for %.0f s on %s (in %s)", budget, data, home)
    env = {
        "HOMEVISION_HOME": str(home),
        "HOMEVISION_PARAMS": str(params_file()),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",  # never a shared server
    }
    command = ["-m", "homevision.cli", "train", "--data", str(data), "--budget", str(budget)]
    _python(*command, env=env, cwd=home)
    return reports
