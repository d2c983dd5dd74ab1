#!/usr/bin/env bash
# Runs herdcache's example service (examples/timetable) on its embedded default: the
# memory tier and a local SQLite database, no Redis. Installs what it needs first.
#   scripts/run-example.sh               the demo: requests against the app in-process, what happened, exit
#   scripts/run-example.sh --serve ...   serve it on 127.0.0.1 (further arguments go to the service, e.g. --port 8001)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
if [ "${1:-}" = "--serve" ]; then
  shift
  exec "$root/.venv/bin/python" -m examples.timetable "$@"
fi
exec "$root/.venv/bin/python" -m examples.timetable --demo "$@"
