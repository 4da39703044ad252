#!/usr/bin/env bash
# Install the Debian packages Calln's run and test targets use, when they are missing:
# nats-server (broker for `make run` and the tests), chromium (browser tests), coturn (TURN relay).
# Installing needs root and the Debian package mirror; without them this prints what to install.
set -euo pipefail

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v turnserver >/dev/null 2>&1 || [ -x /usr/bin/turnserver ] || missing+=(coturn)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "system_packages: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  echo "system_packages: continuing without them (tests that need them are skipped)." >&2
  exit 0
fi

echo "system_packages: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The coturn package starts no daemon on a container without systemd; make sure none runs.
echo "system_packages: installed ${missing[*]}"
