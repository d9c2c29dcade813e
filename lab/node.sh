#!/usr/bin/env bash
# Docker hosts on this machine, for Swarm and the kuryr managed plugin across hosts.
#
#   lab/node.sh up                 bring up LAB_NODES nodes (idempotent; needs `make lab` first)
#   lab/node.sh down               stop and remove everything `up` made (every node there is)
#   lab/node.sh status             one line per node and part; exit 1 if any part is down
#   lab/node.sh exec N -- CMD...   run CMD on node N (its network, mount and UTS namespaces)
#   lab/node.sh add N              bring up node N alone, for another lab script (OWNER below)
#   lab/node.sh remove N           stop and remove node N alone (whoever made it)
#   lab/node.sh status N           node N's lines only
#
# Node N (1, 2, ...) is the network namespace kuryr-node-N, a UTS namespace (hostname
# kuryr-node-N) and a mount namespace of its own, both pinned in /run/kuryr-lab/node-N/. In
# the mount namespace /run is the node's own folder /run/kuryr-lab/node-N/run, so that
# /var/run/docker.sock, /run/docker (plugins, netns), /run/containerd and /var/run/openvswitch
# are the node's; /run/ovn (the lab's central OVN NB/SB sockets) and /run/kuryr-lab are bound
# in from the main host. /var/lib/docker, /var/lib/containerd, /etc/docker and /etc/kuryr are
# the node's folders in /var/lib/kuryr-lab/node-N/. Everything else (/usr, /tmp, /work, ...)
# is the main host's. Each node runs its own ovsdb-server, ovs-vswitchd (userspace datapath),
# ovn-controller (chassis kuryr-node-N, configured with `kuryr host init`) and dockerd (with
# its own containerd), and, when LAB_NODES_PLUGIN holds a plugin, the kuryr managed plugin:
# `kuryr` in the OVN mode and, when the lab's Neutron answers (`make lab-openstack`), a second
# instance `kuryr-neutron` in the Neutron mode, which reaches the lab's Neutron (127.0.0.1:9696
# of the main host) at the node's own 127.0.0.1:9696: a socat there forwards to a Unix socket
# in /run/kuryr-lab, where a socat of the main host connects to Neutron.
#
# The underlay: a Linux bridge kuryr-nodes in a network namespace of its own (kuryr-nodes),
# so that the main host's iptables (Docker's FORWARD policy DROP with bridge netfilter) never
# sees the frames. Each node's netdev bridge br-phy holds the node's address (OVS userspace
# tunnels leave through the bridge that holds the tunnel address); a veth is the wire:
#
#   main host  knodes-host 172.31.252.1/24 ==\
#   node 1     br-phy 172.31.252.11/24 -- kn1-phy ==== kn1-sw --+ Linux bridge kuryr-nodes
#   node 2     br-phy 172.31.252.12/24 -- kn2-phy ==== kn2-sw --+ (netns kuryr-nodes)
#   node 3     br-phy 172.31.252.13/24 -- kn3-phy ==== kn3-sw --/
#
# Knobs: LAB_NODES (how many, default 3, 1 to 9), LAB_WAIT (seconds to wait for a daemon,
# default 60), KURYR (the kuryr binary; default `kuryr` on PATH, else target/debug/kuryr),
# LAB_NODES_PLUGIN (the managed plugin folder with config.json and rootfs/; default
# target/plugin/kuryr of this repository).
#
# `add N` is how another lab script gets a Docker host of its own (lab/cluster.sh: node 9, on
# a clustered OVN): LAB_NODE_SB and LAB_NODE_NB name its OVN remotes (default the lab's
# central sockets; they must be reachable from inside the node, e.g. unix sockets under
# /run/kuryr-lab), LAB_NODE_OWNER the script it belongs to. It never gets the plugin. The
# choices are kept in the node's folder (remotes, owner): `up`, `down` and `status` leave an
# owned node alone (its owner removes it with `remove N`), and `up` refuses to take its number.
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

SELF=$(realpath "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
readonly SELF REPO
readonly STATE_DIR=/run/kuryr-lab
readonly LOCK=$STATE_DIR/node.lock
readonly LOG_ROOT=/var/log/kuryr-lab
readonly DATA_ROOT=/var/lib/kuryr-lab
readonly NB_DB=unix:/var/run/ovn/ovnnb_db.sock
readonly SB_DB=unix:/var/run/ovn/ovnsb_db.sock
readonly VSWITCH_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
# Debian's client, which matches dockerd; /usr/local/bin/docker is a newer client only.
readonly DOCKER=/usr/bin/docker
readonly DOCKERD=/usr/sbin/dockerd
readonly IMAGE=kuryr-busybox:latest
readonly NET=172.31.252
readonly HOST_IP=$NET.1
readonly SWITCH=kuryr-nodes
readonly HOST_LEG=knodes-host
readonly PHY=br-phy
readonly ENCAP=geneve
readonly PLUGIN=kuryr
readonly NEUTRON_PLUGIN=kuryr-neutron
readonly LAB_NEUTRON=http://127.0.0.1:9696
readonly NEUTRON_FORWARD=$STATE_DIR/neutron-forward.pid
readonly NEUTRON_SOCK=$STATE_DIR/neutron.sock

COUNT=${LAB_NODES:-3}
WAIT=${LAB_WAIT:-60}
KURYR=${KURYR:-kuryr}
PLUGIN_DIR=${LAB_NODES_PLUGIN:-$REPO/target/plugin/kuryr}

take_lock() {
    mkdir -p "$STATE_DIR" "$LOG_ROOT"
    lock_or_fail "$LOCK" 600 node
}

check_count() {
    [[ $COUNT =~ ^[1-9]$ ]] || fail node "LAB_NODES=$COUNT: give a number from 1 to 9"
}

# Per-node names. The node's /run is run_dir; inside the node /var/run/openvswitch is
# ovs_dir and /var/run/docker.sock is docker_sock, seen from the main host at these paths.
ns() { echo "kuryr-node-$1"; }
dir() { echo "$STATE_DIR/node-$1"; }
run_dir() { echo "$STATE_DIR/node-$1/run"; }
ovs_dir() { echo "$STATE_DIR/node-$1/run/openvswitch"; }
data() { echo "$DATA_ROOT/node-$1"; }
logs() { echo "$LOG_ROOT/node-$1"; }
ip_of() { echo "$NET.$((10 + $1))"; }
# A fixed MAC for node N's br-phy: a re-created node keeps it, so neighbours stay right.
mac_of() { printf '02:6b:6e:fc:00:%02x\n' "$((10 + $1))"; }
wire_sw() { echo "kn$1-sw"; }
wire_phy() { echo "kn$1-phy"; }
db() { echo "unix:$(ovs_dir "$1")/db.sock"; }
# The node's OVN remotes (what `add` was given, else the lab's central ones) and its owner
# (empty: lab/node.sh's own).
sb_of() { sed -n 's/^sb=//p' "$(dir "$1")/remotes" 2>/dev/null | grep . || echo "$SB_DB"; }
nb_of() { sed -n 's/^nb=//p' "$(dir "$1")/remotes" 2>/dev/null | grep . || echo "$NB_DB"; }
owner_of() { cat "$(dir "$1")/owner" 2>/dev/null || true; }
docker_sock() { echo "$(run_dir "$1")/docker.sock"; }
vsctl() {
    local n=$1
    shift
    ovs-vsctl --timeout=5 --db="$(db "$n")" "$@"
}
ndocker() {
    local n=$1
    shift
    "$DOCKER" -H "unix://$(docker_sock "$n")" "$@"
}
unquote() { tr -d '"'; }

# The prefix that runs a command on node N: its namespaces, its OVS and ovn-controller run
# directory (OVN_RUNDIR too: the node's ovn-controller must not put its pid file and control
# socket in /var/run/ovn, which is the main host's).
node_prefix() {
    local d
    d=$(dir "$1")
    echo nsenter --mount="$d/mnt" --uts="$d/uts" --net="/var/run/netns/$(ns "$1")" -- \
        env OVS_RUNDIR=/var/run/openvswitch OVN_RUNDIR=/var/run/openvswitch
}
in_node() {
    local n=$1
    shift
    # shellcheck disable=SC2046
    $(node_prefix "$n") "$@"
}

# clean_exec CMD...: close every descriptor above 2, then exec CMD; only in a process of its
# own: `(clean_exec ...)` or `clean_exec ... &`. A daemon that inherits a descriptor holds
# whatever it is for its whole life (this script's lock, or the lock of whoever ran it).
clean_exec() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
}

# tx_csum_off NETNS DEV: no tx checksum offload on DEV (NETNS "" = the main host's). The
# userspace datapath forwards what it reads from a veth or tap as it is: a packet the kernel
# left with a partial checksum arrives broken, and TCP (Swarm's 2377, 7946) times out while
# ping works.
tx_csum_off() {
    local pre=()
    [[ -z $1 ]] || pre=(ip netns exec "$1")
    if "${pre[@]}" ethtool -k "$2" 2>/dev/null | grep -q '^tx-checksumming: on'; then
        "${pre[@]}" ethtool -K "$2" tx off >/dev/null 2>&1 || true
    fi
}

# ---------------------------------------------------------------------------------------
# The main host's side

main_ok() {
    { pidfile_alive /var/run/docker.pid dockerd && timeout 20 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; } ||
        fail main "the main dockerd does not answer on /var/run/docker.sock: run \`make lab\` first"
    "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 ||
        fail main "the main Docker has no image $IMAGE: run \`make lab\` first"
    ovn-sbctl --timeout=5 --db="$SB_DB" show >/dev/null 2>&1 ||
        fail main "OVN Southbound does not answer at $SB_DB: run \`make lab\` first"
    ovn-nbctl --timeout=5 --db="$NB_DB" show >/dev/null 2>&1 ||
        fail main "OVN Northbound does not answer at $NB_DB: run \`make lab\` first"
    pidfile_alive /var/run/ovn/ovn-northd.pid ovn-northd || fail main "ovn-northd is not running: run \`make lab\` first"
}

# The wire: a Linux bridge in a namespace of its own, and a leg to the main host.
up_switch() {
    if [[ ! -e /var/run/netns/$SWITCH ]]; then
        ip netns add "$SWITCH"
        say "$SWITCH" "namespace created"
    fi
    ip -n "$SWITCH" link set lo up
    if ! ip -n "$SWITCH" link show "$SWITCH" >/dev/null 2>&1; then
        ip -n "$SWITCH" link add "$SWITCH" type bridge
        say "$SWITCH" "bridge created"
    fi
    ip netns exec "$SWITCH" sysctl -q -w "net.ipv6.conf.$SWITCH.disable_ipv6=1" >/dev/null
    ip -n "$SWITCH" link set "$SWITCH" up
    if ! ip link show "$HOST_LEG" >/dev/null 2>&1; then
        ip -n "$SWITCH" link del host 2>/dev/null || true
        ip link add "$HOST_LEG" type veth peer name host netns "$SWITCH"
        say "$SWITCH" "veth $HOST_LEG (main host) <-> host created"
    fi
    ip -n "$SWITCH" link set host master "$SWITCH" up
    ip link set "$HOST_LEG" up
    ip -4 addr show dev "$HOST_LEG" | grep -qF " $HOST_IP/24 " || ip addr add "$HOST_IP/24" dev "$HOST_LEG"
    tx_csum_off "" "$HOST_LEG"
}

down_switch() {
    ip link del "$HOST_LEG" 2>/dev/null || true
    if [[ -e /var/run/netns/$SWITCH ]]; then
        ip netns delete "$SWITCH"
        say "$SWITCH" "wire removed"
    fi
}

switch_ok() {
    [[ -e /var/run/netns/$SWITCH ]] &&
        ip -n "$SWITCH" link show "$SWITCH" 2>/dev/null | grep -q ',UP' &&
        ip -4 addr show dev "$HOST_LEG" 2>/dev/null | grep -qF " $HOST_IP/24 "
}

# ---------------------------------------------------------------------------------------
# One node

# A killed daemon stays a zombie for about a second here (pid 1, process_api, reaps orphans
# late): alive_pid would call it alive, and `up` would wait for it instead of starting anew.
is_zombie() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
live_pid() {
    local pid
    pid=$(alive_pid "$@") && ! is_zombie "$pid" && echo "$pid"
}
pid_of() { live_pid "$(ovs_dir "$1")/$2.pid" "$2"; }
ovsdb_running() { pid_of "$1" ovsdb-server >/dev/null && ovsdb-client --timeout=5 list-dbs "$(db "$1")" >/dev/null 2>&1; }
vswitchd_running() {
    local pid
    pid=$(pid_of "$1" ovs-vswitchd) && ovs-appctl -T 5 -t "$(ovs_dir "$1")/ovs-vswitchd.$pid.ctl" version >/dev/null 2>&1
}
controller_ctl() {
    local pid
    pid=$(pid_of "$1" ovn-controller) || return 1
    echo "$(ovs_dir "$1")/ovn-controller.$pid.ctl"
}
controller_running() {
    local ctl
    ctl=$(controller_ctl "$1") && ovn-appctl -T 5 -t "$ctl" version >/dev/null 2>&1
}
chassis_row() { ovn-sbctl --timeout=5 --db="$(sb_of "$1")" --bare --columns=_uuid find Chassis "name=\"$(ns "$1")\"" 2>/dev/null; }
chassis_ready() {
    local ctl
    ctl=$(controller_ctl "$1") &&
        [[ $(ovn-appctl -T 5 -t "$ctl" connection-status 2>/dev/null) == connected ]] &&
        [[ -n $(chassis_row "$1") ]]
}
dockerd_pid() { live_pid "$(run_dir "$1")/docker.pid" dockerd; }
containerd_pid() { live_pid "$(run_dir "$1")/docker/containerd/containerd.pid" containerd; }
dockerd_running() {
    dockerd_pid "$1" >/dev/null &&
        timeout 20 "$DOCKER" -H "unix://$(docker_sock "$1")" version --format '{{.Server.Version}}' >/dev/null 2>&1
}
pinned() { [[ $(findmnt -rn -o FSTYPE --mountpoint "$1" 2>/dev/null) == nsfs ]]; }
mntns_ok() {
    local d
    d=$(dir "$1")
    [[ -f $d/mnt.ready ]] && pinned "$d/mnt" && pinned "$d/uts"
}

# Runs inside the new namespaces (`node.sh _setup-ns N`, under nsenter), once per namespace.
# `-n` everywhere: libmount would record the mounts in /run/mount/utab, the main host's.
setup_ns() {
    local n=$1 d r data target
    d=$(dir "$n")
    r=$(run_dir "$n")
    data=$(data "$n")
    # 1. The namespace started as a copy of the main host's mounts: namespace files
    # (/run/netns, Docker's /run/docker/netns), other nodes' pins and the main Docker's
    # overlay mounts would keep those alive and busy after the main host removed them. The
    # namespace is private (unshare --propagation private): nothing here reaches the host.
    while read -r target; do
        umount -n -l "$target" 2>/dev/null || true
    done < <(awk '{print $5}' /proc/self/mountinfo |
        grep -E '^(/run/.|/var/run/.|/var/lib/docker(/|$)|/var/lib/containerd(/|$))' | sort -r)
    # 2. The node's /run: its own folder, with the lab's central OVN sockets and the lab's
    # state folder bound in. Its own rather than single folders bound into the host's /run:
    # dockerd listens on /var/run/docker.sock, a file directly in /run, and a bind mount on
    # a file does not survive the host re-creating it (lab/README.md, VM lab).
    mkdir -p "$r/ovn" "$r/kuryr-lab" "$r/openvswitch" "$r/docker/plugins" "$r/containerd" "$r/netns" "$r/lock"
    chmod 1777 "$r/lock"
    mount -n --bind "$r" "$r"
    mount -n --bind /run/ovn "$r/ovn"
    mount -n --bind "$STATE_DIR" "$r/kuryr-lab"
    # 3. /sys from inside the node's network namespace (as `ip netns exec` does), keeping the
    # cgroup hierarchies Docker needs.
    mkdir -p "$d/sys.new"
    mount -n -t sysfs "$(ns "$n")-sys" "$d/sys.new"
    mount -n --rbind /sys/fs/cgroup "$d/sys.new/fs/cgroup"
    umount -n -l /sys
    mount -n --move "$d/sys.new" /sys
    rmdir "$d/sys.new"
    mount -n --move "$r" /run
    # 4. The node's Docker, containerd and kuryr state and configuration.
    mount -n --bind "$data/docker" /var/lib/docker
    mount -n --bind "$data/containerd" /var/lib/containerd
    mount -n --bind "$data/etc/docker" /etc/docker
    mount -n --bind "$data/etc/kuryr" /etc/kuryr
}

up_namespaces() {
    local n=$1 d name data
    d=$(dir "$n")
    name=$(ns "$n")
    data=$(data "$n")
    if [[ ! -e /var/run/netns/$name ]]; then
        ip netns add "$name"
        say "$name" "network namespace created"
    fi
    ip -n "$name" link set lo up
    mntns_ok "$n" && return 0
    # Daemons of an earlier, lost namespace would live on in it.
    stop_daemons "$n"
    kill_rest "$n"
    if pinned "$d/mnt"; then umount "$d/mnt"; fi
    if pinned "$d/uts"; then umount "$d/uts"; fi
    rm -f "$d/mnt.ready"
    findmnt -rn --mountpoint "$d" >/dev/null 2>&1 || mount --bind "$d" "$d"
    # Namespace files can only be pinned on a private mount (as `ip netns` does for /run/netns).
    mount --make-private "$d"
    mkdir -p "$data/docker" "$data/containerd" "$data/etc/docker/plugins" "$data/etc/kuryr" /var/lib/containerd /etc/kuryr
    touch "$d/mnt" "$d/uts"
    unshare --uts="$d/uts" hostname "$name" || fail "$name" "could not create its UTS namespace on $d/uts"
    unshare --mount="$d/mnt" --propagation private true ||
        fail "$name" "could not create its mount namespace on $d/mnt"
    nsenter --mount="$d/mnt" --net="/var/run/netns/$name" -- "$SELF" _setup-ns "$n" >>"$(logs "$n")/setup-ns.log" 2>&1 ||
        fail "$name" "could not set up its mount namespace" "$(logs "$n")/setup-ns.log"
    touch "$d/mnt.ready"
    say "$name" "mount and UTS namespaces created ($d/mnt, $d/uts; hostname $name)"
}

up_ovs() {
    local n=$1 o l name
    o=$(ovs_dir "$n")
    l=$(logs "$n")
    name=$(ns "$n")
    if ! ovsdb_running "$n"; then
        [[ -f $o/conf.db ]] || ovsdb-tool create "$o/conf.db" "$VSWITCH_SCHEMA"
        rm -f "$o/ovsdb-server.pid"
        # shellcheck disable=SC2046
        (clean_exec $(node_prefix "$n") ovsdb-server /var/run/openvswitch/conf.db \
            --remote=punix:/var/run/openvswitch/db.sock --pidfile=/var/run/openvswitch/ovsdb-server.pid \
            --log-file="$l/ovsdb-server.log" --detach </dev/null 2>>"$l/start.log") ||
            fail "$name" "ovsdb-server did not start" "$l/start.log" "$l/ovsdb-server.log"
        wait_for "$WAIT" ovsdb_running "$n" || fail "$name" "ovsdb-server does not answer on $o/db.sock" "$l/ovsdb-server.log"
        vsctl "$n" --no-wait init
        vsctl "$n" --no-wait set Open_vSwitch . "external_ids:hostname=$name"
        say "$name" "ovsdb-server started"
    fi
    if ! vswitchd_running "$n"; then
        rm -f "$o/ovs-vswitchd.pid"
        # shellcheck disable=SC2046
        (clean_exec $(node_prefix "$n") ovs-vswitchd unix:/var/run/openvswitch/db.sock \
            --pidfile=/var/run/openvswitch/ovs-vswitchd.pid --log-file="$l/ovs-vswitchd.log" --detach \
            </dev/null 2>>"$l/start.log") ||
            fail "$name" "ovs-vswitchd did not start" "$l/start.log" "$l/ovs-vswitchd.log"
        wait_for "$WAIT" vswitchd_running "$n" || fail "$name" "ovs-vswitchd does not answer" "$l/ovs-vswitchd.log"
        say "$name" "ovs-vswitchd started"
    fi
}

# The underlay: br-phy with the node's address, its veth to the Linux bridge kuryr-nodes.
up_underlay() {
    local n=$1 name l sw phy addr
    name=$(ns "$n")
    l=$(logs "$n")
    sw=$(wire_sw "$n")
    phy=$(wire_phy "$n")
    addr="$(ip_of "$n")/24"
    if ! ip -n "$SWITCH" link show "$sw" >/dev/null 2>&1 || ! ip -n "$name" link show "$phy" >/dev/null 2>&1; then
        ip -n "$SWITCH" link del "$sw" 2>/dev/null || true
        ip -n "$name" link del "$phy" 2>/dev/null || true
        # A port left in the database from an old pair stays dead with the userspace datapath
        # when a new device of that name appears: take it out so that it is added anew.
        vsctl "$n" --if-exists del-port "$PHY" "$phy"
        ip -n "$SWITCH" link add "$sw" type veth peer name "$phy" netns "$name"
        say "$name" "veth $phy <-> $sw (on $SWITCH) created"
    fi
    ip netns exec "$SWITCH" sysctl -q -w "net.ipv6.conf.$sw.disable_ipv6=1" >/dev/null
    ip -n "$SWITCH" link set "$sw" master "$SWITCH" up
    ip -n "$name" link set "$phy" up
    # phy is a live kernel interface too (userspace datapath): only br-phy speaks for the
    # node, or the kernel answers ARP for the node's address from phy as well.
    ip netns exec "$name" sysctl -q -w "net.ipv4.conf.$phy.arp_ignore=1" "net.ipv4.conf.$phy.rp_filter=1" \
        "net.ipv6.conf.$phy.disable_ipv6=1" >/dev/null
    if [[ $(vsctl "$n" port-to-br "$phy" 2>/dev/null) != "$PHY" ]] ||
        [[ $(vsctl "$n" --if-exists get Bridge "$PHY" datapath_type) != netdev ]]; then
        vsctl "$n" --may-exist add-br "$PHY" -- set Bridge "$PHY" datapath_type=netdev \
            "other_config:hwaddr=\"$(mac_of "$n")\"" -- --may-exist add-port "$PHY" "$phy"
        say "$name" "$PHY (netdev) holds $phy"
    fi
    wait_for 10 ip -n "$name" link show "$PHY" >/dev/null 2>&1 || fail "$name" "$PHY did not appear" "$l/ovs-vswitchd.log"
    # After an ovs-vswitchd restart the bridge's device is new: address and state are gone.
    ip -n "$name" link set "$PHY" up
    ip -n "$name" -4 addr show dev "$PHY" | grep -qF " $addr " || ip -n "$name" addr add "$addr" dev "$PHY"
    tx_csum_off "$name" "$PHY"
    tx_csum_off "$name" "$phy"
    tx_csum_off "$SWITCH" "$sw"
}

host_ok() {
    local n=$1 ext
    ext=$(vsctl "$n" get Open_vSwitch . external_ids 2>/dev/null) || return 1
    [[ $ext == *"system-id=$(ns "$n")"* && $ext == *"ovn-encap-ip=\"$(ip_of "$n")\""* &&
        $ext == *"ovn-remote=\"$(sb_of "$n")\""* && $ext == *"ovn-encap-type=$ENCAP"* ]] &&
        vsctl "$n" br-exists br-int
}

# The chassis settings, written the way an operator would, and ovn-controller.
up_chassis() {
    local n=$1 name l
    name=$(ns "$n")
    l=$(logs "$n")
    if ! host_ok "$n"; then
        "$KURYR" host init --ovsdb "$(db "$n")" --bridge br-int --overlay --tep "$(ip_of "$n")" \
            --encap "$ENCAP" --sb "$(sb_of "$n")" --nb "$(nb_of "$n")" --datapath netdev \
            --system-id "$name" >"$l/host-init.log" 2>&1 ||
            fail "$name" "kuryr host init failed" "$l/host-init.log"
        host_ok "$n" || fail "$name" "the Open_vSwitch settings are not what \`kuryr host init\` was asked for: see \`lab/node.sh exec $n -- ovs-vsctl list Open_vSwitch\`" "$l/host-init.log"
        say "$name" "chassis settings written (kuryr host init, tunnel endpoint $(ip_of "$n"))"
    fi
    if ! controller_running "$n"; then
        rm -f "$(ovs_dir "$n")/ovn-controller.pid"
        # shellcheck disable=SC2046
        (clean_exec $(node_prefix "$n") ovn-controller unix:/var/run/openvswitch/db.sock \
            --pidfile=/var/run/openvswitch/ovn-controller.pid --log-file="$l/ovn-controller.log" --detach \
            </dev/null 2>>"$l/start.log") ||
            fail "$name" "ovn-controller did not start" "$l/start.log" "$l/ovn-controller.log"
        say "$name" "ovn-controller started"
    fi
}

wait_chassis() {
    local n=$1
    wait_for "$WAIT" chassis_ready "$n" ||
        fail "$(ns "$n")" "no chassis $(ns "$n") in the SB after ${WAIT}s" "$(logs "$n")/ovn-controller.log"
}

# Starts the node's dockerd without waiting for it (wait_dockerd does), so that the nodes'
# daemons start side by side.
start_dockerd() {
    local n=$1 r l name data
    r=$(run_dir "$n")
    l=$(logs "$n")
    name=$(ns "$n")
    data=$(data "$n")
    dockerd_pid "$n" >/dev/null && return 0
    # dockerd refuses to start on a pid file naming a live process, and a stale pid file of
    # its containerd makes it wait 15 s.
    rm -f "$r/docker.pid"
    containerd_pid "$n" >/dev/null || rm -f "$r/docker/containerd/containerd.pid"
    # Its containers in a cgroup of their own (nodes do not collide, and `down` finds every
    # process of the node); no live restore (Swarm, and `down` stops everything).
    printf '{\n  "cgroup-parent": "/%s",\n  "live-restore": false\n}\n' "$name" >"$data/etc/docker/daemon.json"
    echo "=== $(date -Is) node.sh up: starting dockerd" >>"$l/dockerd.log"
    # setsid: its own session, so that ^C on `up` does not take it down. Default paths
    # inside the node: /var/run/docker.sock, /var/run/docker.pid, /var/lib/docker,
    # /etc/docker/daemon.json, and its own containerd (no /run/containerd/containerd.sock).
    # shellcheck disable=SC2046
    clean_exec setsid $(node_prefix "$n") "$DOCKERD" </dev/null >>"$l/dockerd.log" 2>&1 &
    echo $! >"$(dir "$n")/dockerd.started"
    say "$name" "dockerd starting"
}

wait_dockerd() {
    local n=$1 name l pid deadline
    name=$(ns "$n")
    l=$(logs "$n")
    pid=$(cat "$(dir "$n")/dockerd.started" 2>/dev/null) || pid=
    deadline=$((SECONDS + WAIT))
    until dockerd_running "$n"; do
        if [[ -n $pid ]] && { ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; }; then
            fail "$name" "dockerd exited while starting" "$l/dockerd.log"
        fi
        ((SECONDS < deadline)) || fail "$name" "dockerd did not answer within ${WAIT}s" "$l/dockerd.log"
        sleep 0.2
    done
    if [[ -n $pid ]]; then
        rm -f "$(dir "$n")/dockerd.started"
        say "$name" "dockerd started (unix://$(docker_sock "$n"))"
    fi
}

up_image() {
    local n=$1 name l want
    name=$(ns "$n")
    l=$(logs "$n")
    want=$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE")
    [[ $(ndocker "$n" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null) == "$want" ]] && return 0
    "$DOCKER" save "$IMAGE" | ndocker "$n" load >"$l/image.log" 2>&1 ||
        fail "$name" "loading $IMAGE into its Docker failed" "$l/image.log" "$l/dockerd.log"
    say "$name" "$IMAGE loaded"
}

# The plugin's identity: config.json and every file of rootfs/ (path, size, mtime), and the
# content of the binary config.json names as entrypoint.
plugin_sum() {
    local entry
    entry=$(/usr/bin/python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
e = c.get("entrypoint") or c.get("Entrypoint") or [""]
print(e[0])' "$PLUGIN_DIR/config.json" 2>/dev/null) || entry=
    {
        # How up_plugin sets it up: a change here replaces installed plugins too.
        echo "conf.source=node folder"
        cat "$PLUGIN_DIR/config.json"
        (cd "$PLUGIN_DIR/rootfs" 2>/dev/null && find . -type f -printf '%P %s %T@\n' | LC_ALL=C sort)
        [[ -z $entry || ! -f $PLUGIN_DIR/rootfs/$entry ]] || sha256sum <"$PLUGIN_DIR/rootfs/$entry"
    } | sha256sum | cut -c1-16
}

# write_kuryr_conf N FOLDER ARGS...: the kuryr.conf in FOLDER for a plugin of node N, by
# `kuryr config generate ARGS`: global scope (Swarm networks), the node's OVS. Fails (status
# 1) when the file was already so.
write_kuryr_conf() {
    local n=$1 conf new l
    conf=$2/kuryr.conf
    shift 2
    l=$(logs "$n")
    mkdir -p "$(dirname "$conf")"
    new=$("$KURYR" config generate "$@" --scope global --bridge br-int 2>"$l/kuryr-conf.log" |
        sed '/^\[ovs\]$/a ovsdb_connection = unix:/var/run/openvswitch/db.sock') ||
        fail "$(ns "$n")" "kuryr config generate failed" "$l/kuryr-conf.log"
    [[ -f $conf && $(cat "$conf") == "$new" ]] && return 1
    printf '%s\n' "$new" >"$conf"
    "$KURYR" config check "$conf" >>"$l/kuryr-conf.log" 2>&1 ||
        fail "$(ns "$n")" "kuryr config check $conf failed" "$l/kuryr-conf.log"
    say "$(ns "$n")" "kuryr.conf written ($conf)"
}

# plugin_enabled N [NAME]
plugin_enabled() { [[ $(ndocker "$1" plugin inspect --format '{{.Enabled}}' "${2:-$PLUGIN}" 2>/dev/null) == true ]]; }

# up_plugin N WANT NAME CONF_FOLDER [FOLDER]: the plugin NAME from FOLDER (default PLUGIN_DIR;
# identity WANT), its /etc/kuryr mounted from CONF_FOLDER, enabled.
up_plugin() {
    local n=$1 want=$2 pname=$3 conf_dir=$4 from=${5:-$PLUGIN_DIR} d name l have sum
    d=$(dir "$n")
    name=$(ns "$n")
    l=$(logs "$n")
    sum=$d/$pname.sum
    have=$(cat "$sum" 2>/dev/null) || have=
    if [[ $have == "$want" ]] && plugin_enabled "$n" "$pname"; then
        return 0
    fi
    echo "=== $(date -Is) node.sh up: plugin $pname from $from ($want)" >>"$l/plugin.log"
    if ndocker "$n" plugin inspect "$pname" >/dev/null 2>&1 && [[ $have != "$want" ]]; then
        ndocker "$n" plugin disable -f "$pname" >>"$l/plugin.log" 2>&1 || true
        ndocker "$n" plugin rm -f "$pname" >>"$l/plugin.log" 2>&1 ||
            fail "$name" "docker plugin rm -f $pname failed" "$l/plugin.log"
        say "$name" "plugin $pname removed (a newer one is in $from)"
    fi
    rm -f "$sum"
    if ! ndocker "$n" plugin inspect "$pname" >/dev/null 2>&1; then
        ndocker "$n" plugin create "$pname" "$from" >>"$l/plugin.log" 2>&1 ||
            fail "$name" "docker plugin create $pname $from failed" "$l/plugin.log" "$l/dockerd.log"
    fi
    # The conf mount's source is the node's own folder, not /etc/kuryr: removing a directory
    # removes the mounts on it in every mount namespace (a package purge on the host removes
    # /etc/kuryr), and a plugin whose mount source is gone fails to start with its dockerd.
    if ! plugin_enabled "$n" "$pname"; then
        ndocker "$n" plugin set "$pname" conf.source="$conf_dir" >>"$l/plugin.log" 2>&1 ||
            fail "$name" "docker plugin set $pname conf.source failed" "$l/plugin.log"
    fi
    echo "$want" >"$sum"
    if ! plugin_enabled "$n" "$pname"; then
        timeout 120 "$DOCKER" -H "unix://$(docker_sock "$n")" plugin enable "$pname" >>"$l/plugin.log" 2>&1 ||
            fail "$name" "docker plugin enable $pname failed" "$l/plugin.log" "$l/dockerd.log"
    fi
    say "$name" "plugin $pname installed and enabled ($want)"
}

neutron_answers() { curl -fsS -m 5 "$LAB_NEUTRON/v2.0/networks?limit=1" >/dev/null 2>&1; }

# The nodes' way to the lab's Neutron (which listens on 127.0.0.1 only), the main host's side.
up_neutron_forward() {
    live_pid "$NEUTRON_FORWARD" socat >/dev/null && return 0
    (clean_exec setsid socat "UNIX-LISTEN:$NEUTRON_SOCK,fork,unlink-early,mode=600" "TCP:127.0.0.1:9696" \
        </dev/null >>"$LOG_ROOT/neutron-forward.log" 2>&1) &
    echo $! >"$NEUTRON_FORWARD"
    say neutron "forward $NEUTRON_SOCK -> 127.0.0.1:9696 for the nodes"
}

# up_node_neutron N: node N's side, 127.0.0.1:9696 there (stopped with the node's processes).
up_node_neutron() {
    local n=$1 pidf
    pidf=$(dir "$n")/neutron-forward.pid
    live_pid "$pidf" socat >/dev/null && return 0
    # shellcheck disable=SC2046
    (clean_exec setsid $(node_prefix "$n") socat "TCP-LISTEN:9696,bind=127.0.0.1,fork,reuseaddr" \
        "UNIX-CONNECT:$NEUTRON_SOCK" </dev/null >>"$(logs "$n")/neutron-forward.log" 2>&1) &
    echo $! >"$pidf"
}

down_neutron_forward() {
    local pid
    if pid=$(live_pid "$NEUTRON_FORWARD" socat); then stop_pids 5 "$pid"; fi
    rm -f "$NEUTRON_FORWARD" "$NEUTRON_SOCK"
}

# The plugin folder for the Neutron-mode instance: Docker refuses to create a second plugin
# whose rootfs is one it already has, so this copy's rootfs has one file more.
neutron_plugin_dir() {
    local d=$DATA_ROOT/plugin-neutron
    if [[ $(cat "$d/source.sum" 2>/dev/null) != "$1" ]]; then
        rm -rf "$d"
        mkdir -p "$d"
        cp -a "$PLUGIN_DIR/config.json" "$PLUGIN_DIR/rootfs" "$d/"
        mkdir -p "$d/rootfs/etc"
        echo "$NEUTRON_PLUGIN" >"$d/rootfs/etc/kuryr-plugin-name"
        echo "$1" >"$d/source.sum"
    fi
    echo "$d"
}

# up_plugins N WANT NEUTRON: node N's plugins, the Neutron-mode one when NEUTRON is yes.
up_plugins() {
    local n=$1 want=$2 neutron=$3 conf_dir
    conf_dir=$(data "$n")/etc/kuryr
    if write_kuryr_conf "$n" "$conf_dir" --nb "$NB_DB"; then
        # A plugin reads its kuryr.conf when it starts.
        ndocker "$n" plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
    fi
    up_plugin "$n" "$want" "$PLUGIN" "$conf_dir"
    [[ $neutron == yes ]] || return 0
    up_node_neutron "$n"
    conf_dir=$(data "$n")/etc/kuryr-neutron
    if write_kuryr_conf "$n" "$conf_dir" --backend neutron --neutron-url "$LAB_NEUTRON" --host "$(ns "$n")" \
        --kuryr-uri http://127.0.0.1:23751; then
        ndocker "$n" plugin disable -f "$NEUTRON_PLUGIN" >/dev/null 2>&1 || true
    fi
    up_plugin "$n" "$want" "$NEUTRON_PLUGIN" "$conf_dir" "$(neutron_plugin_dir "$want")"
}

ping_node() { in_node "$1" ping -c 1 -W 1 -q "$(ip_of "$2")" >/dev/null 2>&1; }

check_path() {
    if ((COUNT < 2)); then
        wait_for 15 ping_node 1 1 || fail "data path" "node 1 cannot reach its own address $(ip_of 1)"
        say "data path" "not checked between nodes (one node)"
        return 0
    fi
    wait_for 15 ping_node 1 2 ||
        fail "data path" "node 1 ($(ip_of 1)) cannot ping node 2 ($(ip_of 2)) over $SWITCH" \
            "$(logs 1)/ovs-vswitchd.log" "$(logs 2)/ovs-vswitchd.log"
    say "data path" "node 1 ($(ip_of 1)) pings node 2 ($(ip_of 2))"
}

# ---------------------------------------------------------------------------------------
# Teardown: best effort and idempotent; each step treats "already gone" as done.

# stop_pids SECONDS PID...: SIGTERM to all, SIGKILL to those alive after SECONDS.
stop_pids() {
    local secs=$1 p
    shift
    (($# > 0)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    all_gone() {
        for p; do kill -0 "$p" 2>/dev/null && ! is_zombie "$p" && return 1; done
        return 0
    }
    wait_for "$secs" all_gone "$@" || kill -KILL "$@" 2>/dev/null || true
}

# daemon_pids N: asks node N's ovn-controller to exit (so that it removes its Chassis row
# from the SB) and kills the containers of its dockerd; prints the pids of its daemons.
daemon_pids() {
    local n=$1 pid ids ctl
    if ctl=$(controller_ctl "$n"); then
        ovn-appctl -T 10 -t "$ctl" exit >/dev/null 2>&1 || true
    fi
    # dockerd stops its containers, plugins and containerd; killed first, its containers do
    # not take the 10 s stop grace each.
    if pid=$(dockerd_pid "$n"); then
        ids=$(timeout 10 "$DOCKER" -H "unix://$(docker_sock "$n")" ps -q 2>/dev/null) || ids=
        # shellcheck disable=SC2086
        [[ -z $ids ]] || timeout 30 "$DOCKER" -H "unix://$(docker_sock "$n")" kill $ids >/dev/null 2>&1 || true
        echo "$pid"
    fi
    if pid=$(pid_of "$n" ovn-controller); then echo "$pid"; fi
    if pid=$(pid_of "$n" ovs-vswitchd); then echo "$pid"; fi
    if pid=$(pid_of "$n" ovsdb-server); then echo "$pid"; fi
}

# stop_daemons N...: the daemons of all these nodes at once (dockerd takes about 3 s to stop).
stop_daemons() {
    local n pid pids=()
    for n; do
        while read -r pid; do pids+=("$pid"); done < <(daemon_pids "$n")
    done
    stop_pids "$WAIT" "${pids[@]}"
    pids=()
    for n; do
        if pid=$(containerd_pid "$n"); then pids+=("$pid"); fi
    done
    stop_pids 10 "${pids[@]}"
}

# Every process still on the node: in its network, mount or UTS namespace (a containerd
# shim, the plugin, a daemon a test started there), or in its containers' cgroup.
node_pids() {
    local n=$1 d netns p mnt='' uts=''
    d=$(dir "$n")
    netns=/var/run/netns/$(ns "$n")
    ! pinned "$d/mnt" || mnt=$d/mnt
    ! pinned "$d/uts" || uts=$d/uts
    [[ -e $netns ]] || netns=
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == "$$" || $p == "$BASHPID" ]] && continue
        if [[ -n $mnt && /proc/$p/ns/mnt -ef $mnt ]] || [[ -n $uts && /proc/$p/ns/uts -ef $uts ]] ||
            [[ -n $netns && /proc/$p/ns/net -ef $netns ]]; then
            echo "$p"
        fi
    done
    cat /sys/fs/cgroup/*/"$(ns "$n")"/{,*/}cgroup.procs 2>/dev/null || true
}

kill_rest() {
    local n=$1 pids
    pids=$(node_pids "$n" | sort -u | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    say "$(ns "$n")" "stopping processes left on the node: $pids"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    wait_for 5 eval "[[ -z \$(node_pids $n) ]]" && return 0
    # shellcheck disable=SC2046
    kill -KILL $(node_pids "$n") 2>/dev/null || true
    sleep 0.5
}

down_one() {
    local n=$1 d name cg
    d=$(dir "$n")
    name=$(ns "$n")
    stop_daemons "$n"
    kill_rest "$n"
    # A Chassis row left behind (controller killed) would keep tunnels to nowhere.
    if [[ -n $(chassis_row "$n") ]]; then
        ovn-sbctl --timeout=5 --db="$(sb_of "$n")" chassis-del "$name" || true
    fi
    # The containers' cgroups (children first).
    for cg in /sys/fs/cgroup/*/"$name"; do
        [[ -d $cg ]] || continue
        find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$cg" 2>/dev/null || true
    done
    ip -n "$SWITCH" link del "$(wire_sw "$n")" 2>/dev/null || true
    # The namespaces and the files.
    if pinned "$d/mnt"; then umount "$d/mnt"; fi
    if pinned "$d/uts"; then umount "$d/uts"; fi
    while findmnt -rn --mountpoint "$d" >/dev/null 2>&1; do umount "$d" || break; done
    [[ -e /var/run/netns/$name ]] && ip netns delete "$name"
    rm -rf "$d" "$(data "$n")"
    say "$name" removed
}

# ---------------------------------------------------------------------------------------

resolve_kuryr() {
    local k
    if ! k=$(command -v "$KURYR"); then
        [[ $KURYR == kuryr && -x $REPO/target/debug/kuryr ]] ||
            fail node "no kuryr binary ($KURYR): set KURYR=path/to/kuryr or run \`make lab-nodes\`"
        k=$REPO/target/debug/kuryr
    fi
    KURYR=$(realpath "$k")
}

cmd_up() {
    need_root
    check_count
    take_lock
    resolve_kuryr
    main_ok
    local n want='' neutron=no
    for ((n = 1; n <= COUNT; n++)); do
        [[ -z $(owner_of "$n") ]] ||
            fail "$(ns "$n")" "node $n belongs to $(owner_of "$n") (\`$(owner_of "$n") down\` removes it): give a smaller LAB_NODES"
    done
    for ((n = 1; n <= COUNT; n++)); do
        mkdir -p "$(dir "$n")" "$(logs "$n")" "$(data "$n")"
    done
    up_switch
    # Everything that does not wait, node after node; then wait for each.
    for ((n = 1; n <= COUNT; n++)); do
        up_namespaces "$n"
        up_ovs "$n"
        up_underlay "$n"
        up_chassis "$n"
        start_dockerd "$n"
    done
    if [[ -f $PLUGIN_DIR/config.json ]]; then
        want=$(plugin_sum)
        if neutron_answers; then
            neutron=yes
            up_neutron_forward
        else
            say neutron "the lab's Neutron does not answer ($LAB_NEUTRON; \`make lab-openstack\`): no $NEUTRON_PLUGIN plugin"
        fi
    else
        say plugin "no plugin in $PLUGIN_DIR (no config.json; \`make plugin\` builds it, LAB_NODES_PLUGIN names another folder): not installed"
    fi
    for ((n = 1; n <= COUNT; n++)); do
        wait_chassis "$n"
        wait_dockerd "$n"
        up_image "$n"
        [[ -z $want ]] || up_plugins "$n" "$want" "$neutron"
        say "$(ns "$n")" "ready ($(ip_of "$n") on $PHY, chassis $(ns "$n"), docker unix://$(docker_sock "$n"))"
    done
    check_path
}

cmd_down() {
    need_root
    take_lock
    local d n nodes=" " kept=" "
    # Every node there is, whatever LAB_NODES says now, but those another script owns.
    for d in "$STATE_DIR"/node-[1-9]; do
        [[ -d $d ]] || continue
        n=${d##*-}
        if [[ -n $(owner_of "$n") ]]; then
            kept+="$n "
            say "$(ns "$n")" "left alone: it belongs to $(owner_of "$n")"
        else
            nodes+="$n "
        fi
    done
    for n in 1 2 3 4 5 6 7 8 9; do
        [[ $nodes == *" $n "* || $kept == *" $n "* ]] && continue
        if [[ -e /var/run/netns/$(ns "$n") || -d $(data "$n") ]] || [[ -n $(chassis_row "$n") ]]; then
            nodes+="$n "
        fi
    done
    # shellcheck disable=SC2086
    stop_daemons $nodes
    for n in $nodes; do
        down_one "$n"
    done
    down_neutron_forward
    rm -rf "$DATA_ROOT/plugin-neutron"
    # The wire goes with the last node.
    [[ $kept != " " ]] || down_switch
}

# add N: node N alone, for the script LAB_NODE_OWNER, on the OVN remotes LAB_NODE_SB and
# LAB_NODE_NB; no plugin. Idempotent: a second `add` only repairs what is missing.
cmd_add() {
    need_root
    local n=${1:-} owner=${LAB_NODE_OWNER:-} d have
    [[ $n =~ ^[1-9]$ ]] || {
        echo "usage: LAB_NODE_OWNER=SCRIPT [LAB_NODE_SB=REMOTES] [LAB_NODE_NB=REMOTES] $0 add N" >&2
        exit 2
    }
    [[ -n $owner ]] || fail "$(ns "$n")" "LAB_NODE_OWNER is not set: name the lab script the node belongs to"
    take_lock
    resolve_kuryr
    main_ok
    d=$(dir "$n")
    have=$(owner_of "$n")
    if [[ -e /var/run/netns/$(ns "$n") && $have != "$owner" ]]; then
        fail "$(ns "$n")" "node $n is already there and belongs to ${have:-lab/node.sh up}"
    fi
    mkdir -p "$d" "$(logs "$n")" "$(data "$n")"
    echo "$owner" >"$d/owner"
    printf 'sb=%s\nnb=%s\n' "${LAB_NODE_SB:-$SB_DB}" "${LAB_NODE_NB:-$NB_DB}" >"$d/remotes"
    up_switch
    up_namespaces "$n"
    up_ovs "$n"
    up_underlay "$n"
    up_chassis "$n"
    start_dockerd "$n"
    wait_chassis "$n"
    wait_dockerd "$n"
    up_image "$n"
    say "$(ns "$n")" "ready ($(ip_of "$n") on $PHY, chassis $(ns "$n") on $(sb_of "$n"), docker unix://$(docker_sock "$n"))"
}

# remove N: node N alone; the wire too when no other node is left.
cmd_remove() {
    need_root
    local n=${1:-} d
    [[ $n =~ ^[1-9]$ ]] || {
        echo "usage: $0 remove N" >&2
        exit 2
    }
    take_lock
    if [[ -d $(dir "$n") || -e /var/run/netns/$(ns "$n") || -d $(data "$n") ]]; then
        down_one "$n"
    fi
    for d in "$STATE_DIR"/node-[1-9]; do
        [[ -d $d ]] && return 0
    done
    down_switch
}

# plugin_status N WANT NAME: one line on node N's plugin NAME; fails unless it is enabled and
# of identity WANT.
plugin_status() {
    local n=$1 want=$2 pname=$3 name state
    name=$(ns "$n")
    if ! state=$(ndocker "$n" plugin inspect --format '{{.Enabled}}' "$pname" 2>/dev/null); then
        say "$name plugin" "$pname not installed ($PLUGIN_DIR has one: run up)"
        return 1
    elif [[ $state != true ]]; then
        say "$name plugin" "$pname installed, disabled"
        return 1
    elif [[ $(cat "$(dir "$n")/$pname.sum" 2>/dev/null) != "$want" ]]; then
        say "$name plugin" "$pname enabled, older than $PLUGIN_DIR (run up)"
        return 1
    fi
    say "$name plugin" "$pname enabled ($want)"
}

cmd_status() {
    need_root
    local n rc=0 name d want='' only=${1:-} first=1 last=$COUNT
    if [[ -n $only ]]; then
        [[ $only =~ ^[1-9]$ ]] || {
            echo "usage: $0 status [N]" >&2
            exit 2
        }
        first=$only last=$only
    else
        check_count
    fi
    if switch_ok; then
        say "$SWITCH" "wire up (Linux bridge $SWITCH in netns $SWITCH, main host $HOST_LEG $HOST_IP/24)"
    else
        say "$SWITCH" "wire absent or incomplete (netns $SWITCH, bridge $SWITCH, $HOST_LEG $HOST_IP/24)"
        rc=1
    fi
    [[ ! -f $PLUGIN_DIR/config.json ]] || want=$(plugin_sum)
    for ((n = first; n <= last; n++)); do
        name=$(ns "$n")
        d=$(dir "$n")
        if [[ -z $only && -n $(owner_of "$n") ]]; then
            say "$name" "belongs to $(owner_of "$n"), not counted here (\`lab/node.sh status $n\`)"
            rc=1
            continue
        fi
        if [[ ! -e /var/run/netns/$name ]]; then
            say "$name" absent
            rc=1
            continue
        fi
        if mntns_ok "$n"; then
            say "$name namespaces" "network $name, mount $d/mnt, uts $d/uts (hostname $(nsenter --uts="$d/uts" hostname))"
        else
            say "$name namespaces" "network $name present, mount or UTS namespace missing"
            rc=1
            continue
        fi
        if ovsdb_running "$n" && vswitchd_running "$n"; then
            say "$name ovs" "ovsdb-server and ovs-vswitchd running ($(db "$n"))"
        else
            say "$name ovs" "a daemon is not running ($(db "$n"))"
            rc=1
        fi
        if [[ $(vsctl "$n" port-to-br "$(wire_phy "$n")" 2>/dev/null) == "$PHY" ]] &&
            ip -n "$SWITCH" link show "$(wire_sw "$n")" 2>/dev/null | grep -q "master $SWITCH" &&
            ip -n "$name" -4 addr show dev "$PHY" 2>/dev/null | grep -qF " $(ip_of "$n")/24 "; then
            say "$name underlay" "$PHY $(ip_of "$n")/24, $(wire_phy "$n") == $(wire_sw "$n") on $SWITCH"
        else
            say "$name underlay" "incomplete (want $PHY with $(ip_of "$n")/24 holding $(wire_phy "$n"), $(wire_sw "$n") on $SWITCH)"
            rc=1
        fi
        if controller_running "$n" && chassis_ready "$n"; then
            say "$name ovn-controller" "running, chassis $name in the SB (encap $ENCAP $(ip_of "$n"))"
        else
            say "$name ovn-controller" "not running or chassis $name not in the SB"
            rc=1
        fi
        if dockerd_running "$n"; then
            if ndocker "$n" image inspect "$IMAGE" >/dev/null 2>&1; then
                say "$name dockerd" "running (unix://$(docker_sock "$n"), $IMAGE present)"
            else
                say "$name dockerd" "running (unix://$(docker_sock "$n")), $IMAGE missing"
                rc=1
            fi
            if [[ -n $(owner_of "$n") ]]; then
                say "$name plugin" "none (the node belongs to $(owner_of "$n"), which runs kuryr itself)"
            elif [[ -z $want ]]; then
                say "$name plugin" "missing (no plugin in $PLUGIN_DIR)"
            else
                plugin_status "$n" "$want" "$PLUGIN" || rc=1
                # The Neutron-mode one only where `up` found the lab's Neutron.
                if ndocker "$n" plugin inspect "$NEUTRON_PLUGIN" >/dev/null 2>&1; then
                    plugin_status "$n" "$want" "$NEUTRON_PLUGIN" || rc=1
                fi
            fi
        else
            say "$name dockerd" "not running"
            rc=1
        fi
    done
    if [[ -z $only ]] && ((rc == 0 && COUNT >= 2)); then
        if ping_node 1 2; then
            say "data path" "node 1 ($(ip_of 1)) pings node 2 ($(ip_of 2))"
        else
            say "data path" "node 1 ($(ip_of 1)) cannot ping node 2 ($(ip_of 2))"
            rc=1
        fi
    fi
    return "$rc"
}

# exec N -- CMD...: nsenter enters the node's namespaces and executes CMD: its exit status
# and standard streams are CMD's. The working directory is kept.
cmd_exec() {
    need_root
    local n=${1:-} d
    [[ $n =~ ^[1-9]$ ]] || {
        echo "usage: $0 exec N -- CMD..." >&2
        exit 2
    }
    shift
    [[ ${1:-} != -- ]] || shift
    (($# > 0)) || {
        echo "usage: $0 exec N -- CMD..." >&2
        exit 2
    }
    d=$(dir "$n")
    { mntns_ok "$n" && [[ -e /var/run/netns/$(ns "$n") ]]; } ||
        fail "$(ns "$n")" "node $n is not up: run \`make lab-nodes\` (or LAB_NODES=$n lab/node.sh up)"
    exec nsenter --mount="$d/mnt" --uts="$d/uts" --net="/var/run/netns/$(ns "$n")" --wd="$PWD" -- \
        env -u DOCKER_HOST -u DOCKER_CONTEXT -u OVS_RUNDIR -u OVS_DBDIR -u OVN_RUNDIR "$@"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status)
        shift
        cmd_status "$@"
        ;;
    add) cmd_add "${2:-}" ;;
    remove) cmd_remove "${2:-}" ;;
    exec)
        shift
        cmd_exec "$@"
        ;;
    _setup-ns) setup_ns "$2" ;;
    *)
        echo "usage: $0 up|down|status [N]|exec N -- CMD...|add N|remove N" >&2
        exit 2
        ;;
esac
