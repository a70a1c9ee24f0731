#!/usr/bin/env bash
# wrk, the HTTP load generator of bench/serving.py, from Debian's packages (as root).
set -euo pipefail
command -v wrk >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing wrk from Debian's packages (once)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
else
  echo "wrk is missing: sudo apt-get install wrk" >&2
  exit 1
fi
