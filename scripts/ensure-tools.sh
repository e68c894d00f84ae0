#!/usr/bin/env bash
# Installs the tools the test suite runs for real when they are missing: Prometheus and
# promtool (Debian's `prometheus` package), for tests/prometheus. Idempotent: with both on
# PATH it does nothing. Without apt-get (not Debian/Ubuntu) or without root it says what
# to install and goes on; the tests then skip, or fail under CI=true.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-tools: prometheus/promtool missing and no apt-get; install Prometheus" \
       "(https://prometheus.io/download/) for tests/prometheus" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "ensure-tools: prometheus/promtool missing; run as root:" \
         "apt-get install -y prometheus" >&2
    exit 0
  fi
fi
echo "ensure-tools: installing Debian's prometheus package (prometheus, promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# the package may start a system Prometheus on :9090; the tests run their own on free
# ports, so the one this script installed is stopped and kept from starting at boot
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
elif command -v service >/dev/null; then
  $sudo service prometheus stop >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
