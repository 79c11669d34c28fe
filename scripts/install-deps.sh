#!/bin/sh
# Install the Debian packages deltafs needs to build and test, if missing.
# Only acts as root; otherwise it lists what is missing and carries on.
set -e
PKGS="build-essential cmake pkg-config libjansson-dev libssl-dev libxxhash-dev
libcmocka-dev util-linux"
[ -n "$DFS_EXTRA_PKGS" ] && PKGS="$PKGS $DFS_EXTRA_PKGS"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root to install)" >&2
  exit 0
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
