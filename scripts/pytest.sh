#!/usr/bin/env bash
# Runs the test suite. Zero collected tests (pytest exit 5) is a failure, not a pass.
set -uo pipefail
python="${1:-python}"
"$python" -m pytest -n 2 --dist loadfile -q "${@:2}"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$rc"
