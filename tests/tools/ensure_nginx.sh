#!/usr/bin/env bash
# nginx for the deploy test (`nginx -t` on the shipped site config). Installed from Debian's
# packages when missing and we are root; otherwise the test is skipped.
set -euo pipefail
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing nginx from Debian's packages (once)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx-light >/dev/null
  # Only the binary is wanted: the package's own server must not hold port 80.
  (systemctl disable --now nginx 2>/dev/null || service nginx stop 2>/dev/null || true)
  exit 0
fi
echo "nginx is missing; the deploy config test will be skipped (apt-get install nginx-light)." >&2
