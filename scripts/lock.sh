#!/usr/bin/env bash
# Refreshes constraints.txt: resolves shipyard[all,dev] (and uv, which `make install-dev` uses)
# afresh, without the old pins, in a throwaway virtualenv, and writes every resolved version.
# `make install` / `make install-dev` install with `-c constraints.txt`, so the resolver has no
# choices left to backtrack over. Run it (`make lock`) after changing pyproject.toml's
# dependencies, or to take newer releases; then run `make test` and commit constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade pip
"$tmp/venv/bin/pip" install --quiet uv -e ".[all,dev]"
{
  echo "# Every version \`make install-dev\` installs, resolved by scripts/lock.sh (\`make lock\`)."
  echo "# Generated: edit pyproject.toml and rerun \`make lock\` rather than this file."
  # the local version label (torch's +cpu) names where the wheel came from, not the release:
  # torch==2.13.0 still admits the CPU build pip finds on this machine's disk
  "$tmp/venv/bin/pip" freeze --exclude-editable | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+.*/\1/'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
