#!/usr/bin/env bash
# Run the helpdesk locally: SQLite, demo data on first start, a server on http://127.0.0.1:8000/.
# HOST and PORT may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export ENVIRONMENT="${ENVIRONMENT:-dev}"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py seed_demo --if-empty
exec .venv/bin/python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
