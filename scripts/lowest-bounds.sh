#!/usr/bin/env bash
# Check the lower bounds pyproject.toml declares: resolve every direct dependency to the lowest
# version it allows (uv's lowest-direct resolution; what the oldest environment a user could
# install gets), install that in .venv-lowest, and run the unit, model and data tests there.
# A bound that is too low fails here, not on a user's machine. `make lowest-bounds`.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
venv=.venv-lowest
python=$(.venv/bin/python -c 'import sys; print(sys.version_info[0], sys.version_info[1], sep=".")')
mkdir -p build
"$uv" pip compile pyproject.toml --resolution lowest-direct --python-version "$python" \
  --quiet -o build/lowest-requirements.txt
[ -x "$venv/bin/python" ] || "$uv" venv --quiet "$venv" --python .venv/bin/python
# With the test tools (they are not what is being checked; the resolver picks their versions).
VIRTUAL_ENV="$venv" "$uv" pip install --quiet -r build/lowest-requirements.txt \
  pytest pytest-xdist pytest-timeout httpx hypothesis
VIRTUAL_ENV="$venv" "$uv" pip check --quiet
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
names = ("numpy", "pandas", "pyarrow", "scikit-learn", "pandera", "mapie", "optuna", "mlflow")
print("lowest bounds:", ", ".join(f"{n} {version(n)}" for n in names))
PY
PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -p no:cacheprovider -q -n "${TEST_WORKERS:-2}" \
  tests/unit tests/model tests/data
