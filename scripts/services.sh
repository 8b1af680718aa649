#!/usr/bin/env bash
# The team's tracking services: PostgreSQL (Debian's `postgresql` package, password logins only)
# and `mlflow server` behind MLflow's basic-auth app, backend store on that PostgreSQL.
#
#   scripts/services.sh start    install PostgreSQL if missing, generate secrets, start both
#   scripts/services.sh stop     stop both (data is kept)
#   scripts/services.sh status   say what runs, exit 1 when something is down (installs nothing)
#   scripts/services.sh env      print the exports that point a shell at them (no secret in them)
#
# Everything lives under $HOMEVISION_SERVICES_DIR (default .services/, ignored by git): pg/ (the
# cluster), mlartifacts/ (the artifact root), secrets/ (mode 0700, files 0600), logs, mlflow.pid.
# Both bind to 127.0.0.1 only. With HOMEVISION_DATABASE_URL set (e.g. a managed database), that
# server is used (its query string, e.g. sslmode, kept) and no cluster is started here.
# The work is done by homevision/services/ (python -m homevision.services).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export HOMEVISION_SERVICES_DIR="${HOMEVISION_SERVICES_DIR:-$ROOT/.services}"
exec "$ROOT/.venv/bin/python" -m homevision.services "$@"
