#!/usr/bin/env bash
# redis-server from Debian's packages (as root), for the tests of REDIS_URL: several app
# machines sharing one Redis for their rate limits.
set -euo pipefail
command -v redis-server >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing redis-server from Debian's packages (once)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's own service is not wanted: the tests start servers of their own.
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  if command -v systemctl >/dev/null; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  service redis-server stop >/dev/null 2>&1 || true
else
  echo "redis-server is missing: sudo apt-get install redis-server" >&2
  exit 1
fi
