#!/usr/bin/env bash
# Removes the edge-agent service installed by install.sh: stops and disables it, removes the unit and
# /opt/edge-agent. Keeps the config (/etc/edge-agent), the store (/var/lib/edge-agent) and the system user
# unless --purge is given. Idempotent.
#   sudo ./systemd/uninstall.sh [--root DIR] [--purge]
# --root DIR (or DESTDIR=DIR) works under DIR: no user removed, systemctl not run.
set -euo pipefail

usage() { echo "usage: uninstall.sh [--root DIR] [--purge]" >&2; exit 64; }
ROOT="${DESTDIR:-}"
PURGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2 ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
ROOT="${ROOT%/}"
UNIT="$ROOT/etc/systemd/system/edge-agent.service"
say() { echo "uninstall.sh: $*"; }
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then echo "uninstall.sh: run as root (sudo), or give --root DIR" >&2; exit 1; fi

if [ -n "$ROOT" ]; then
  say "--root $ROOT: systemctl not run"
elif [ ! -d /run/systemd/system ]; then
  say "systemd is not running here (no /run/systemd/system): skipped systemctl disable --now"
elif [ -e "$UNIT" ]; then
  systemctl disable --now edge-agent.service || say "systemctl disable --now failed; removing the files anyway"
fi

rm -f "$UNIT"
rm -rf "$UNIT.d"
[ -n "$ROOT" ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload
if [ "$(readlink "$ROOT/usr/local/bin/edge-agent" 2>/dev/null)" = /opt/edge-agent/bin/edge-agent ]; then rm -f "$ROOT/usr/local/bin/edge-agent"; fi
rm -rf "$ROOT/opt/edge-agent" "$ROOT/opt/edge-agent.new" "$ROOT/opt/edge-agent.old"
say "removed the unit and /opt/edge-agent"

if [ -z "$PURGE" ]; then
  say "kept the config $ROOT/etc/edge-agent and the store $ROOT/var/lib/edge-agent (--purge removes them)"
  exit 0
fi
rm -rf "$ROOT/etc/edge-agent" "$ROOT/var/lib/edge-agent" "$ROOT/var/lib/private/edge-agent"
say "purged the config and the store"
if [ -z "$ROOT" ] && getent passwd edge-agent >/dev/null; then
  userdel edge-agent
  say "removed the system user edge-agent"
fi
