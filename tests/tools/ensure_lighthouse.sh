#!/usr/bin/env bash
# Lighthouse for bench/lighthouse.py: the npm package at one pinned version, in
# bench/.lighthouse/ (ignored by git). Silent when it is already there at that version. Node.js
# and npm come from Debian's packages when missing and we are root; otherwise says what to do
# and fails. Chromium is tests/tools/ensure_chromium.sh's.
set -euo pipefail
VERSION=12.8.2 # the last Lighthouse for Node 18 and 20 (13 wants Node 22.19)
NODE_MIN=18.16 # what Lighthouse $VERSION asks for
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX="$ROOT/bench/.lighthouse"
PACKAGE="$PREFIX/node_modules/lighthouse/package.json"

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e '
      const [a, b] = process.versions.node.split(".").map(Number);
      const [x, y] = process.argv[1].split(".").map(Number);
      process.exit(a > x || (a === x && b >= y) ? 0 : 1);' "$NODE_MIN"
}

installed_version() {
  [ -f "$PACKAGE" ] && [ -x "$PREFIX/node_modules/.bin/lighthouse" ] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$PACKAGE" | head -n 1
}

if [ "$(installed_version)" = "$VERSION" ] && node_ok; then
  exit 0
fi

if ! node_ok; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Node.js and npm from Debian's packages (once)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! node_ok; then
    found=$(node --version 2>/dev/null || echo "none")
    echo "Lighthouse $VERSION needs Node.js >= $NODE_MIN and npm (node found: $found)." >&2
    echo "Install them with: sudo apt-get install nodejs npm" >&2
    exit 1
  fi
fi

echo "Installing Lighthouse $VERSION into bench/.lighthouse/ (once)..."
mkdir -p "$PREFIX"
# Bounded: a registry that stops answering must not hang the suite.
timeout 900 npm install --no-audit --no-fund --loglevel=error --prefix "$PREFIX" \
  "lighthouse@$VERSION" >/dev/null
if [ "$(installed_version)" != "$VERSION" ]; then
  echo "npm did not install lighthouse@$VERSION into $PREFIX" >&2
  exit 1
fi
