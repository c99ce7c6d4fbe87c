#!/usr/bin/env bash
# Run the whole test suite twice, on SQLite and on a throwaway MariaDB server, with coverage.
# Extra arguments go to pytest (e.g. scripts/test.sh -k seed -x).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test || exit 1

rm -f .coverage .coverage.*
status=0
echo "==> Test suite on SQLite"
.venv/bin/python -m coverage run -m pytest "$@" || status=1
echo "==> Test suite on MariaDB"
.venv/bin/python -m coverage run -m pytest --mariadb "$@" || status=1
.venv/bin/python -m coverage combine -q && echo "==> Coverage over both runs: $(.venv/bin/python -m coverage report --format=total --precision=1)%"
[ "$status" = 0 ] && echo "==> Both databases passed" || echo "==> FAILED on at least one database" >&2
exit "$status"
