#!/usr/bin/env bash
# Installs a Debian package the tests run when its command is missing:
#   scripts/ensure-package.sh COMMAND PACKAGE
# apt-get as root, or through passwordless sudo; anything else is a loud failure that says what
# to install. A command Debian keeps in /usr/sbin (nats-server) counts as present there too.
set -euo pipefail
command=$1 package=$2
command -v "$command" >/dev/null && exit 0
[ -x "/usr/sbin/$command" ] && exit 0
die() { printf 'ensure-package: %s\n' "$*" >&2; exit 2; }
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || die "$command missing and not root: apt-get install $package"
    sudo=(sudo -n)
fi
printf '==> installing %s with apt-get\n' "$package" >&2
timeout 120 "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
DEBIAN_FRONTEND=noninteractive timeout 300 "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" \
    >/dev/null || die "apt-get install $package failed"
