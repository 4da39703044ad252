#!/usr/bin/env bash
# Install the Debian packages Calln's run and test targets use, when they are missing:
# nats-server (broker for `make run` and the tests), chromium (browser tests), coturn (TURN relay)
# and nginx-light (the compose proxy configuration is tested against a real nginx).
# Installing needs root and the Debian package mirror; without them this prints what to install.
set -euo pipefail

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v turnserver >/dev/null 2>&1 || [ -x /usr/bin/turnserver ] || missing+=(coturn)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)

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
# Packages such as nginx and coturn start a daemon on install; policy-rc.d exit 101 forbids that.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system_packages: installed ${missing[*]}"
