#!/usr/bin/env bash
# System packages the tests and the cluster need, from Debian: headless Chromium, its driver
# and a font (tests/ops/test_web_*.py); nginx (tests/ops/test_nginx.py, `make cluster`); Redis, the
# cluster's lock store; PostgreSQL (tests/ops/test_retention.py, the cluster's tracker store).
#
# `make test` and `make cluster` run this first. Idempotent and quick when all is there: one
# dpkg-query, no `apt-get update`. When something is missing it installs it as root (one
# `apt-get update`, then `apt-get install`); when it cannot (not root, no apt-get) it stops
# at once (exit 2) with the one command to run.
#
# For tests of this script (nothing is installed or removed):
#   SYSTEM_DEPS="pkg ..."   the packages to check instead of the list below
#   SYSTEM_DEPS_DRY_RUN=1   print the apt-get commands instead of running them
#   SYSTEM_DEPS_UID=N       act as if run by user N (default: `id -u`)
#   SYSTEM_DEPS_APT=path    the apt-get to use (default: the one on PATH; a missing path = no apt)
set -euo pipefail
read -r -a packages <<<"${SYSTEM_DEPS:-chromium chromium-driver fonts-dejavu-core nginx postgresql redis-server}"

installed=""
if command -v dpkg-query >/dev/null 2>&1; then
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '/ install ok installed$/ {print $1}' || true)
fi
missing=()
for pkg in "${packages[@]}"; do
  grep -qxF "$pkg" <<<"$installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system deps: already installed (${packages[*]})"
  exit 0
fi

apt="${SYSTEM_DEPS_APT-$(command -v apt-get || true)}"
if [ -z "$apt" ] || [ ! -x "$apt" ]; then
  echo "system deps: missing ${missing[*]}, and there is no apt-get here (this needs Debian or Ubuntu)." >&2
  echo "  Install the equivalents of: ${missing[*]} with your package manager, then run make again." >&2
  exit 2
fi
if [ "${SYSTEM_DEPS_UID:-$(id -u)}" -ne 0 ]; then
  echo "system deps: missing ${missing[*]}; installing them needs root. Run once:" >&2
  self=$(realpath "$0")
  echo "  sudo ${self#"$PWD"/}" >&2
  exit 2
fi

run() {
  if [ -n "${SYSTEM_DEPS_DRY_RUN:-}" ]; then echo "dry run: $*"; else "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
run "$apt" update -q
run "$apt" install -y -q --no-install-recommends "${missing[@]}"
echo "system deps: ${SYSTEM_DEPS_DRY_RUN:+(dry run) would have }installed ${missing[*]}"
