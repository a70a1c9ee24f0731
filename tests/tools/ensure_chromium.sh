#!/usr/bin/env bash
# Make sure Debian's Chromium (and CJK fonts for screenshots) are there for the browser suite.
# Installs with apt-get when missing and we are root; otherwise says what to do. Under CI the
# browser suite must run, so a missing browser is an error there.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Chromium from Debian's packages (once)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "Chromium is missing at $CHROMIUM and cannot be installed here (not root)." >&2
  exit 1
fi
echo "Chromium is missing at $CHROMIUM; the browser tests will be skipped." >&2
echo "Install it with: sudo apt-get install chromium fonts-noto-cjk" >&2
