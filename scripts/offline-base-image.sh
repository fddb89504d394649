#!/usr/bin/env bash
# Make the Dockerfile's base image (`node:<major>-bookworm-slim`) available to the local Docker
# engine on a build machine that cannot reach Docker Hub (air-gapped, or a mirror-only registry).
#
#   scripts/offline-base-image.sh           # use the local image, else pull it, else build a stand-in
#   scripts/offline-base-image.sh --build   # always build the stand-in (replaces the local tag)
#   NODE_DIR=/opt/node-v20 scripts/offline-base-image.sh   # the Node to put in it (default: the host's)
#
# The stand-in is a Debian bookworm root file system made with debootstrap from the Debian mirror
# the host's apt uses, plus the host's Node (node, npm and its C headers, for native modules), a
# `node` user with uid/gid 1000, `/usr/local/bin/docker-entrypoint.sh`, and the host's apt sources:
# what the Dockerfile relies on from the official image. Where the host trusts extra CA certificates
# (a TLS-intercepting proxy) or uses another npm registry, both are written into the image's global
# npmrc so `npm ci` in the build behaves as on the host. The stand-in is meant for building and
# testing here: on a machine that can pull images, the official image is used and nothing changes.
#
# Needs: root, a running Docker engine, debootstrap, and a Node whose major version matches the
# Dockerfile's FROM line. Exit codes: 0 ready, 2 missing prerequisite, 1 build failed.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "offline-base-image: $*" >&2; exit 2; }

mode=auto
case "${1:-}" in
  "") ;;
  --build) mode=build ;;
  -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
  *) die "unknown argument '$1' (use --build or nothing)" ;;
esac

command -v docker >/dev/null || die "no docker client on PATH"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is dockerd running? see scripts/compose-smoke.sh)"

# The tag comes from the Dockerfile, so the two cannot drift apart.
tag=$(sed -n -E 's/^FROM[[:space:]]+(node:[0-9]+-bookworm-slim)([[:space:]].*)?$/\1/p' Dockerfile | head -n 1)
[ -n "$tag" ] || die "no 'FROM node:<major>-bookworm-slim' line in Dockerfile"
want_major=${tag#node:}
want_major=${want_major%%-*}

if [ "$mode" = auto ]; then
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "offline-base-image: $tag is present locally"
    exit 0
  fi
  # A registry that answers at all answers within a minute; an unreachable one can hang longer.
  if timeout 120 docker pull "$tag" >/dev/null 2>&1; then
    echo "offline-base-image: pulled $tag"
    exit 0
  fi
  echo "offline-base-image: cannot pull $tag; building a stand-in from Debian packages and the host's Node"
fi

[ "$(id -u)" = 0 ] || die "building the stand-in needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap)"

if [ -n "${NODE_DIR:-}" ]; then
  node_bin=$NODE_DIR/bin/node
  node_prefix=$NODE_DIR
else
  node_bin=$(command -v node) || die "no node on PATH (or set NODE_DIR)"
  node_bin=$(readlink -f "$node_bin")
  node_prefix=$(dirname "$(dirname "$node_bin")")
fi
[ -x "$node_bin" ] || die "no executable node at $node_bin"
node_version=$("$node_bin" -p 'process.versions.node')
[ "${node_version%%.*}" = "$want_major" ] ||
  die "the Dockerfile wants Node $want_major, this Node is $node_version (set NODE_DIR to a Node $want_major)"
npm_dir=$node_prefix/lib/node_modules/npm
[ -f "$npm_dir/bin/npm-cli.js" ] || npm_dir=$(npm root -g)/npm
[ -f "$npm_dir/bin/npm-cli.js" ] || die "no npm next to $node_bin"

# The Debian mirror the host's apt uses (deb822 sources first, then the one-line format).
mirror=$(sed -n -E 's/^URIs:[[:space:]]+([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -v -i security | head -n 1 || true)
if [ -z "$mirror" ]; then
  mirror=$(sed -n -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' /etc/apt/sources.list 2>/dev/null |
    grep -v -i security | head -n 1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"

root=$(mktemp -d /tmp/cdktr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "offline-base-image: debootstrap bookworm from $mirror"
# libatomic1: the official Node binaries from 24 on link it (the official image has it too).
debootstrap --variant=minbase --include=libatomic1 bookworm "$root" "$mirror" >/tmp/cdktr-debootstrap.log 2>&1 ||
  { tail -n 20 /tmp/cdktr-debootstrap.log >&2; echo "offline-base-image: debootstrap failed (log: /tmp/cdktr-debootstrap.log)" >&2; exit 1; }

# Node, npm and the C headers, where the official image has them.
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include" "$root/usr/local/etc"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
if [ -d "$node_prefix/include/node" ]; then cp -a "$node_prefix/include/node" "$root/usr/local/include/node"; fi

chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# The host's apt sources, so `apt-get install` in the Dockerfile reaches the same mirror.
rm -f "$root/etc/apt/sources.list"
if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
  cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/"
else
  cp /etc/apt/sources.list "$root/etc/apt/sources.list"
fi

cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# As in the official image: an option or a non-command first argument runs under node.
set -e
if [ "${1#-}" != "$1" ] || ! command -v "$1" >/dev/null 2>&1; then
  set -- node "$@"
fi
exec "$@"
EOF
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"

# npm in the image: the host's registry, its extra CA certificates, headers from /usr/local, and
# native modules built from source (their prebuilt-binary hosts may be unreachable too).
{
  echo "registry=$(npm config get registry)"
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cat /usr/local/share/ca-certificates/*.crt >"$root/usr/local/share/cdktr-extra-ca.pem"
    echo "cafile=/usr/local/share/cdktr-extra-ca.pem"
  fi
  echo "nodedir=/usr/local"
  echo "build-from-source=true"
} >"$root/usr/local/etc/npmrc"

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# Imported under a candidate tag and checked before it takes the real one: a broken image must
# never be "present locally" for the next run.
candidate="cdktr-offline-base-candidate:$node_version"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "ENV NODE_VERSION=$node_version" \
  -c 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  -c 'CMD ["node"]' - "$candidate" >/dev/null
if ! docker run --rm "$candidate" sh -c 'node -e "require(\"crypto\")" && npm --version >/dev/null'; then
  docker rmi "$candidate" >/dev/null 2>&1 || true
  echo "offline-base-image: the built image cannot run node and npm (see above); $tag left as it was" >&2
  exit 1
fi
docker tag "$candidate" "$tag"
docker rmi "$candidate" >/dev/null
echo "offline-base-image: built $tag with Node $node_version"
