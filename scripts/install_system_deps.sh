#!/usr/bin/env bash
# System packages the browser tests need (tests/test_web_*.py): Debian's headless
# Chromium, its driver, and a font so screenshots show text; and nginx, which
# tests/test_nginx.py runs in front of the stack (deploy/nginx/omt.conf); Redis, the
# cluster's lock store (`make cluster`); and PostgreSQL,
# which tests/test_retention.py starts on loopback to test `make purge`. Idempotent: apt runs
# only when a package is missing, with one `apt-get update` first. Needs root (as CI).
set -euo pipefail
packages=(chromium chromium-driver fonts-dejavu-core nginx postgresql redis-server)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system deps: already installed (${packages[*]})"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "system deps: installed ${missing[*]}"
