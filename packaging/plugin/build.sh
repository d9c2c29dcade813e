#!/usr/bin/env bash
# `make plugin`: the managed (v2) Docker plugin as a directory `docker plugin create` takes:
# config.json and rootfs/ (packaging/rootfs.sh: the kuryr binary, iptables, their libraries).
#
#   packaging/plugin/build.sh OUT_DIR KURYR_BINARY
#
# Install it on a host:  docker plugin create kuryr OUT_DIR && docker plugin enable kuryr
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[[ $# -eq 2 ]] || { echo "usage: build.sh OUT_DIR KURYR_BINARY" >&2; exit 1; }
out=$1
rm -rf "$out"
mkdir -p "$out"
"$here/../rootfs.sh" "$out/rootfs" "$2"
cp "$here/config.json" "$out/config.json"
echo "plugin: $out (docker plugin create NAME $out)"
