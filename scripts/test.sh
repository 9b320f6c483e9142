#!/usr/bin/env bash
# Set up (including test tools) and run the whole test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test || exit 1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
if [ "$status" = 5 ]; then
  echo "test: pytest collected no tests (exit 5)" >&2
  exit 1
fi
exit "$status"
