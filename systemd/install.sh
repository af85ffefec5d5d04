#!/usr/bin/env bash
# Installs edge-agent from an unpacked release tarball (`npm run package`) as a systemd service, offline:
# the system user, /opt/edge-agent (the files), /etc/edge-agent (config, credentials), /var/lib/edge-agent
# (store), the unit, `systemctl enable` and a start. Idempotent: run it again to upgrade or repair; an
# existing config is never overwritten.
#   sudo ./systemd/install.sh [--root DIR] [--node PATH]
# --root DIR installs under DIR (a staging root, or a test): no user is made, nothing is chowned, and
# systemctl is not run. DESTDIR=DIR does the same.
set -euo pipefail

usage() { echo "usage: install.sh [--root DIR] [--node PATH]" >&2; exit 64; }
ROOT="${DESTDIR:-}"
NODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2 ;;
    --node) [ $# -ge 2 ] || usage; NODE="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
ROOT="${ROOT%/}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USER_NAME=edge-agent
DEST="$ROOT/opt/edge-agent"
ETC="$ROOT/etc/edge-agent"
STATE="$ROOT/var/lib/edge-agent"
UNIT="$ROOT/etc/systemd/system/edge-agent.service"
say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

for f in dist/agent/cli.js package.json node_modules systemd/edge-agent.service systemd/config.example.yaml; do
  [ -e "$SRC/$f" ] || die "$SRC/$f is missing: run this from an unpacked release tarball (npm run package), not from a source checkout"
done
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (sudo), or give --root DIR to install under DIR"; fi

# A supported node (20 to 24) whose native module ABI the tarball carries a better-sqlite3 build for.
if [ -z "$NODE" ]; then
  NODE="$(command -v node || true)"
  for n in /usr/bin/node /usr/local/bin/node; do
    if [ -z "$NODE" ] && [ -x "$n" ]; then NODE="$n"; fi
  done
fi
[ -n "$NODE" ] && [ -x "$NODE" ] || die "no node binary found: install Node.js 20 or 24 (e.g. the distribution's nodejs package) or give --node PATH"
NODE="$(readlink -f "$NODE")"
read -r NODE_VERSION NODE_ABI NODE_ARCH < <("$NODE" -e 'console.log(process.versions.node, process.versions.modules, process.arch)') \
  || die "$NODE does not run"
MAJOR="${NODE_VERSION%%.*}"
if [ "$MAJOR" -lt 20 ] || [ "$MAJOR" -gt 24 ]; then die "$NODE is Node.js $NODE_VERSION; edge-agent needs Node.js 20 to 24"; fi
BINDING="node_modules/better-sqlite3/lib/binding/node-v$NODE_ABI-linux-$NODE_ARCH/better_sqlite3.node"
if [ ! -f "$SRC/$BINDING" ]; then
  have="$(cd "$SRC/node_modules/better-sqlite3/lib/binding" 2>/dev/null && ls -d node-v* 2>/dev/null | tr '\n' ' ')"
  die "this tarball has no SQLite module for Node.js $NODE_VERSION (ABI $NODE_ABI, $NODE_ARCH); it carries: ${have:-none}. Use Node.js 20 or 24, or the tarball for this architecture"
fi
say "node: $NODE (Node.js $NODE_VERSION)"

# The system user (see the unit's comment for why not DynamicUser=).
OWN=""
if [ -z "$ROOT" ]; then
  if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/edge-agent --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
    say "made the system user $USER_NAME"
  fi
  OWN=1
else
  say "--root $ROOT: no user made, nothing chowned, systemctl not run"
fi

# The files: copied beside the old ones, then swapped in, so a failed copy leaves the old install whole.
if [ "$SRC" != "$(readlink -f "$DEST" 2>/dev/null || echo none)" ]; then
  mkdir -p "$(dirname "$DEST")"
  rm -rf "$DEST.new" "$DEST.old"
  mkdir "$DEST.new"
  cp -a "$SRC/dist" "$SRC/node_modules" "$SRC/package.json" "$SRC/systemd" "$DEST.new/"
  for f in README.md models; do [ -e "$SRC/$f" ] && cp -a "$SRC/$f" "$DEST.new/"; done
  mkdir -p "$DEST.new/bin"
  printf '#!/bin/sh\n# edge-agent with the node it was installed for (install.sh).\nexec %s /opt/edge-agent/dist/agent/cli.js "$@"\n' "$NODE" > "$DEST.new/bin/edge-agent"
  chmod 0755 "$DEST.new/bin/edge-agent"
  chmod -R u=rwX,go=rX "$DEST.new"
  [ -z "$OWN" ] || chown -R root:root "$DEST.new"
  if [ -e "$DEST" ]; then mv "$DEST" "$DEST.old"; fi
  mv "$DEST.new" "$DEST"
  rm -rf "$DEST.old"
  say "installed $DEST"
fi
mkdir -p "$ROOT/usr/local/bin"
ln -sfn /opt/edge-agent/bin/edge-agent "$ROOT/usr/local/bin/edge-agent"

# Config and credentials (root's, readable by the group), the store (the user's).
install -d -m 0750 "$ETC"
install -d -m 0700 "$ETC/credentials"
install -d -m 0750 "$STATE"
if [ -n "$OWN" ]; then chown root:"$USER_NAME" "$ETC"; chown root:root "$ETC/credentials"; chown "$USER_NAME:$USER_NAME" "$STATE"; fi
if [ -e "$ETC/config.yaml" ]; then
  say "kept the existing $ETC/config.yaml"
else
  install -m 0640 "$SRC/systemd/config.example.yaml" "$ETC/config.yaml"
  [ -z "$OWN" ] || chown root:"$USER_NAME" "$ETC/config.yaml"
  say "wrote the example config $ETC/config.yaml (the demo model on the embedded broker): edit it for this line"
fi

# The unit, with ExecStart's node set to the one found above.
mkdir -p "$(dirname "$UNIT")"
sed "s#^ExecStart=/usr/bin/node #ExecStart=$NODE #" "$SRC/systemd/edge-agent.service" > "$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv "$UNIT.tmp" "$UNIT"
say "wrote $UNIT"

if [ -n "$ROOT" ]; then exit 0; fi
if [ ! -d /run/systemd/system ]; then
  say "systemd is not running here (no /run/systemd/system): skipped systemctl daemon-reload, enable and start"
  exit 0
fi
systemctl daemon-reload
systemctl enable edge-agent.service
# restart, not start: a reinstall runs the new files. --no-block: the service becomes active only once the
# broker acknowledges its subscriptions, and an unreachable broker must not hang the installer.
systemctl restart --no-block edge-agent.service
say "enabled and started edge-agent.service: see 'systemctl status edge-agent' and 'journalctl -u edge-agent -f'"
