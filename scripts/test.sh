#!/usr/bin/env bash
# Run the whole test suite on SQLite and on a throwaway MariaDB server, side by side, with coverage;
# each run ends with its 15 slowest tests (where the suite's time goes).
# Extra arguments go to pytest (e.g. scripts/test.sh -k seed -x). TEST_SERIAL=1 runs one after the other.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test || exit 1

# Both runs install releases from the same wheel folder: build it once, before they race for it.
.venv/bin/python -c "from tests.support.deployments import REPO_ROOT, wheelhouse_for
wheelhouse_for(REPO_ROOT / 'requirements.txt')" || exit 1

rm -f .coverage .coverage.*
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0
# Each suite spends much of its time waiting (servers starting, health polls, sleeps in the fault
# matrix): on two cores they take about the time of the longer one side by side.
if [ "${TEST_SERIAL:-0}" = 1 ]; then
  echo "==> Test suite on MariaDB"
  .venv/bin/python -m coverage run -m pytest --mariadb --durations=15 "$@" || status=1
else
  echo "==> Test suite on MariaDB: in the background, its output follows the SQLite run's"
  .venv/bin/python -m coverage run -m pytest --mariadb --durations=15 "$@" >"$logs/mariadb.log" 2>&1 &
  mariadb=$!
fi
echo "==> Test suite on SQLite"
.venv/bin/python -m coverage run -m pytest --durations=15 "$@" || status=1
if [ "${TEST_SERIAL:-0}" != 1 ]; then
  wait "$mariadb" || status=1
  echo "==> Test suite on MariaDB (output)"
  cat "$logs/mariadb.log"
fi
.venv/bin/python -m coverage combine -q && echo "==> Coverage over both runs: $(.venv/bin/python -m coverage report --format=total --precision=1)%"
[ "$status" = 0 ] && echo "==> Both databases passed" || echo "==> FAILED on at least one database" >&2
exit "$status"
