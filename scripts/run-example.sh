#!/usr/bin/env bash
# Runs herdcache's example (examples/quickstart.py) after installing what it needs.
# Arguments go to the example.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
exec "$root/.venv/bin/python" "$root/examples/quickstart.py" "$@"
