#!/usr/bin/env bash
# Installs the tools the test suite runs for real when they are missing: Prometheus and
# promtool (Debian's `prometheus` package), for tests/prometheus, and Chromium (Debian's
# `chromium` package), which Playwright drives in tests/ui/test_browser.py (Playwright's own
# browser download is not used), and wrk (Debian's `wrk`), which
# tests/server/test_loadtest_wrk.py compares `shipyard loadtest` with. Idempotent: with every
# tool on PATH it does nothing. Without apt-get (not Debian/Ubuntu) or without root it says
# what to install and goes on; the tests then skip, or fail under CI=true.
set -euo pipefail

packages=()
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  packages+=(prometheus)
fi
if ! command -v chromium >/dev/null; then
  packages+=(chromium)
fi
if ! command -v wrk >/dev/null; then
  packages+=(wrk)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-tools: missing ${packages[*]} and no apt-get; install Prometheus" \
       "(https://prometheus.io/download/) for tests/prometheus, Chromium for tests/ui and wrk" \
       "(https://github.com/wg/wrk) for tests/server/test_loadtest_wrk.py" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "ensure-tools: missing ${packages[*]}; run as root:" \
         "apt-get install -y ${packages[*]}" >&2
    exit 0
  fi
fi
echo "ensure-tools: installing Debian's ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# the prometheus package may start a system Prometheus on :9090; the tests run their own on
# free ports, so the one this script installed is stopped and kept from starting at boot
if [[ " ${packages[*]} " == *" prometheus "* ]]; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v service >/dev/null; then
    $sudo service prometheus stop >/dev/null 2>&1 || true
  fi
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v chromium >/dev/null \
  && command -v wrk >/dev/null
