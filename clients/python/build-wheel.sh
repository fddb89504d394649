#!/usr/bin/env bash
# Build the wheel of the Python client (package `cdktr`) into OUT_DIR (default clients/python/dist)
# with Debian's tooling only, offline: python3-build, python3-setuptools and python3-wheel
# (`python3 -m build --wheel --no-isolation`, which names what is missing). The build runs in a
# temporary copy of the sources, so nothing is written next to them and two builds may run at
# once. Prints the wheel's path last (the build's own output goes to stderr). PYTHON picks the
# interpreter (default /usr/bin/python3).
#
#   bash clients/python/build-wheel.sh /tmp/wheels
#   python3 -m venv --system-site-packages /tmp/venv      # --system-site-packages: Debian's python3-zmq
#   /tmp/venv/bin/python -m pip install --no-index --no-deps /tmp/wheels/cdktr-*.whl
set -euo pipefail

if [ "$#" -gt 1 ]; then
  echo "usage: $0 [OUT_DIR]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"
out="${1:-$here/dist}"
mkdir -p -- "$out"
out="$(cd -- "$out" && pwd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/cdktr-wheel.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
mkdir -- "$work/src" "$work/src/cdktr" "$work/out"
cp -- "$here/pyproject.toml" "$here/README.md" "$work/src/"
cp -- "$here"/cdktr/*.py "$work/src/cdktr/"

"$python" -m build --wheel --no-isolation --outdir "$work/out" "$work/src" >&2
wheels=("$work"/out/*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
  echo "build-wheel.sh: expected one wheel in $work/out, found: ${wheels[*]}" >&2
  exit 1
fi
name="$(basename -- "${wheels[0]}")"
mv -f -- "${wheels[0]}" "$out/$name"
echo "$out/$name"
