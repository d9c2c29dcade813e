#!/usr/bin/env bash
# `make images`: the agent image (kuryr daemon) and the node image (Open vSwitch and
# ovn-controller), from this machine's own files (Debian's packages), imported into the
# local Docker: no registry, no network.
#
#   packaging/images/build.sh KURYR_BINARY [TAG]
#
#   kuryr/agent:TAG   docker run -d --net=host --cap-add NET_ADMIN -v /proc/sys:/host/proc/sys \
#                       -v /run/docker/plugins:/run/docker/plugins \
#                       -v /var/run/openvswitch:/var/run/openvswitch -v /etc/kuryr:/etc/kuryr \
#                       kuryr/agent:TAG
#   kuryr/node:TAG    docker run -d --net=host --privileged \
#                       (or --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_NICE
#                        --device /dev/net/tun where --privileged is not allowed)
#                       (or --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_NICE --device /dev/net/tun)
#                       -v /var/run/openvswitch:/var/run/openvswitch \
#                       -e OVN_REMOTE=tcp:SB:6642 -e OVN_ENCAP_IP=IP kuryr/node:TAG
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "$0")" && pwd)
[[ $# -ge 1 ]] || { echo "usage: build.sh KURYR_BINARY [TAG]" >&2; exit 1; }
kuryr=$1
tag=${2:-latest}
docker=${DOCKER:-/usr/bin/docker}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

need() {
    command -v "$1" >/dev/null || { echo "build.sh: $1 is not installed ($2)" >&2; exit 1; }
}
need busybox "apt-get install busybox-static"
busybox=$(readlink -f "$(command -v busybox)")

# shell IN DIR: busybox and its applet links, for the entrypoints.
shell_in() {
    mkdir -p "$1/bin"
    cp "$busybox" "$1/bin/busybox"
    for a in sh cat mkdir tr echo sleep ls ps kill ip; do ln -sf busybox "$1/bin/$a"; done
}

# import DIR NAME ENTRYPOINT: DIR as image NAME:TAG.
import() {
    tar -C "$1" -c . | "$docker" import -c "ENTRYPOINT [\"$3\"]" \
        -c "LABEL org.opencontainers.image.title=$2" - "$2:$tag" >/dev/null
    echo "image: $2:$tag ($(du -sh "$1" | cut -f1))"
}

# The agent: the kuryr rootfs of the plugin, a shell and the entrypoint.
"$here/../rootfs.sh" "$work/agent" "$kuryr" >/dev/null
shell_in "$work/agent"
install -D -m 0755 "$here/agent-entrypoint.sh" "$work/agent/usr/local/bin/kuryr-agent"
import "$work/agent" kuryr/agent /usr/local/bin/kuryr-agent

# The node: Open vSwitch and ovn-controller with their libraries and the schema.
need ovs-vswitchd "apt-get install openvswitch-switch"
need ovn-controller "apt-get install ovn-host"
progs=()
for p in ovsdb-server ovs-vswitchd ovs-vsctl ovs-appctl ovsdb-tool ovn-controller ovn-appctl; do
    progs+=("$(command -v "$p")")
done
mkdir -p "$work/node"
# rootfs.sh wants the kuryr binary; the node image has no use for it, so it is dropped.
"$here/../rootfs.sh" "$work/node" "$kuryr" "${progs[@]}" >/dev/null
rm -f "$work/node/usr/bin/kuryr"
mkdir -p "$work/node/usr/share/openvswitch" "$work/node/etc/openvswitch" "$work/node/var/log/openvswitch"
cp /usr/share/openvswitch/vswitch.ovsschema "$work/node/usr/share/openvswitch/"
shell_in "$work/node"
install -D -m 0755 "$here/node-entrypoint.sh" "$work/node/usr/local/bin/kuryr-node"
import "$work/node" kuryr/node /usr/local/bin/kuryr-node
