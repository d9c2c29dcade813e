#!/bin/sh
# The node image's entrypoint: Open vSwitch (userspace or kernel datapath, as the host
# allows) and ovn-controller for this host, run the way kuryr's source documents run OVS in
# a container: --net=host --privileged (or --cap-add NET_ADMIN --cap-add NET_RAW --cap-add
# SYS_NICE --device /dev/net/tun), /var/run/openvswitch shared with the host (kuryr reaches
# db.sock there). Settings by environment:
#   OVN_REMOTE       the Southbound, e.g. tcp:10.0.0.5:6642 (required)
#   OVN_ENCAP_IP     this host's tunnel address (required)
#   OVN_ENCAP_TYPE   geneve (default) or vxlan
#   SYSTEM_ID        this chassis' name (default: the host name)
#   OVN_BRIDGE       the integration bridge (default br-int)
#   DATAPATH_TYPE    netdev for the userspace datapath (default: the kernel's, "system")
set -e
: "${OVN_REMOTE:?set OVN_REMOTE to the OVN Southbound, e.g. tcp:10.0.0.5:6642}"
: "${OVN_ENCAP_IP:?set OVN_ENCAP_IP to this host's tunnel address}"
run=/var/run/openvswitch
db=/etc/openvswitch/conf.db
mkdir -p "$run" /etc/openvswitch /var/log/openvswitch
[ -f "$db" ] || ovsdb-tool create "$db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$db" --remote="punix:$run/db.sock" --pidfile="$run/ovsdb-server.pid" \
    --unixctl="$run/ovsdb-server.ctl" --log-file=/var/log/openvswitch/ovsdb-server.log --detach
ovs-vsctl --no-wait init
ovs-vswitchd "unix:$run/db.sock" --pidfile="$run/ovs-vswitchd.pid" \
    --unixctl="$run/ovs-vswitchd.ctl" --log-file=/var/log/openvswitch/ovs-vswitchd.log --detach
id=${SYSTEM_ID:-$(cat /proc/sys/kernel/hostname)}
ovs-vsctl set Open_vSwitch . \
    external_ids:system-id="$id" \
    external_ids:ovn-remote="$OVN_REMOTE" \
    external_ids:ovn-encap-ip="$OVN_ENCAP_IP" \
    external_ids:ovn-encap-type="${OVN_ENCAP_TYPE:-geneve}" \
    external_ids:ovn-bridge="${OVN_BRIDGE:-br-int}" \
    external_ids:ovn-bridge-datapath-type="${DATAPATH_TYPE:-system}"
trap 'ovs-appctl -t "$run/ovs-vswitchd.ctl" exit 2>/dev/null; ovs-appctl -t "$run/ovsdb-server.ctl" exit 2>/dev/null' EXIT TERM INT
OVN_RUNDIR=$run ovn-controller "unix:$run/db.sock" --pidfile="$run/ovn-controller.pid" \
    --log-file=/var/log/openvswitch/ovn-controller.log &
wait $!
