#!/usr/bin/env bash
# System packages the browser tests need (tests/test_web_*.py): Debian's headless
# Chromium and its driver. Idempotent: apt runs only when something is missing, and
# then `apt-get update` runs once before the install. Needs root (CI runs as root).
set -euo pipefail
packages=(chromium chromium-driver)
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
