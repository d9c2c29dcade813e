#!/usr/bin/env bash
# "VMs" on this machine, for containers inside VMs (nested ports) against the lab's OVN.
#
#   lab/vm.sh up                 bring up the VMs (idempotent; needs `make lab` first)
#   lab/vm.sh down [N...]        stop and remove everything `up` made (or only VMs N...)
#   lab/vm.sh status             one line per part; exit 1 if any is missing
#   lab/vm.sh exec N -- CMD...   run CMD inside VM N (its network and mount namespaces)
#
# VM N (1, 2, ...) is the network namespace kuryr-vm-N plus a mount namespace of its own, in
# which /run is a fresh tmpfs: /run/docker.sock is VM N's dockerd, /run/docker/plugins its own
# plugin folder, /run/openvswitch its own OVS, /sys shows its interfaces; /run/ovn (the lab's
# Northbound) and /run/kuryr-lab are the host's. It runs its own ovsdb-server, ovs-vswitchd
# (userspace datapath, no ovn-controller: a VM is not a chassis) and dockerd (with its own
# containerd). Its NIC is a veth to the host's br-int, bound to the Logical_Switch_Port
# kuryr-vm-N on the logical switch kuryr-vms, as Nova/Neutron would have plugged it:
#
#   host br-int -- kvm1-vif == eth0 --> breth0 172.31.251.11/24   (inside kuryr-vm-1)
#               \- kvm2-vif == eth0 --> breth0 172.31.251.12/24   (inside kuryr-vm-2)
#
# Inside each VM, eth0 is moved into the OVS bridge breth0 with `kuryr host nics-to-bridge`
# and the underlay settings are written with `kuryr host init --underlay`, as an operator
# would do in a real VM. `up` ends by pinging VM 2 from VM 1 through OVN.
#
# Knobs: LAB_VMS (how many, default 2, at most 9), LAB_WAIT (seconds to wait for a daemon,
# default 60), KURYR (the kuryr binary, default `kuryr` on PATH).
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

SELF=$(realpath "${BASH_SOURCE[0]}")
readonly SELF
readonly STATE_DIR=/run/kuryr-lab
readonly LOCK=$STATE_DIR/vm.lock
readonly LOG_ROOT=/var/log/kuryr-lab
readonly DATA_ROOT=/var/lib/kuryr-lab
readonly NB_DB=unix:/var/run/ovn/ovnnb_db.sock
readonly SB_DB=unix:/var/run/ovn/ovnsb_db.sock
readonly VSWITCH_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
# Debian's client, which matches dockerd; /usr/local/bin/docker is a newer client only.
readonly DOCKER=/usr/bin/docker
readonly DOCKERD=/usr/sbin/dockerd
readonly IMAGE=kuryr-busybox:latest
readonly NET=172.31.251
readonly SWITCH=kuryr-vms
readonly BRIDGE=breth0
readonly MARK_KEY=kuryr-lab
# The cloud's APIs (Keystone 5000 and 5001, Neutron 9696 and 9697 of `make lab-openstack`),
# reachable at 127.0.0.1 inside every VM as a tenant VM reaches its cloud's endpoints: in the
# VM a socat per port forwards to a Unix socket in API_DIR (a path, so it crosses network
# namespaces), where a socat per port in the host's namespace connects to the service.
readonly API_PORTS=(5000 5001 9696 9697)
readonly API_DIR=$STATE_DIR/vm-api
readonly MARK_VALUE=vm

COUNT=${LAB_VMS:-2}
WAIT=${LAB_WAIT:-60}
KURYR=${KURYR:-kuryr}

take_lock() {
    mkdir -p "$STATE_DIR" "$LOG_ROOT"
    lock_or_fail "$LOCK" 600 vm
}

check_count() {
    [[ $COUNT =~ ^[1-9]$ ]] || fail vm "LAB_VMS=$COUNT: give a number from 1 to 9"
}

# Per-VM names.
ns() { echo "kuryr-vm-$1"; }
dir() { echo "$STATE_DIR/vm-$1"; }
logs() { echo "$LOG_ROOT/vm-$1"; }
data() { echo "$DATA_ROOT/vm-$1"; }
vif() { echo "kvm$1-vif"; }
ip_of() { echo "$NET.$((10 + $1))"; }
mac_of() { printf '02:6b:76:6d:00:%02x\n' "$1"; }
db() { echo "unix:$(dir "$1")/db.sock"; }
docker_sock() { echo "$(dir "$1")/docker.sock"; }
vsctl() {
    local n=$1
    shift
    ovs-vsctl --timeout=5 --db="$(db "$n")" "$@"
}
hvsctl() { ovs-vsctl --timeout=5 "$@"; }
nbctl() { ovn-nbctl --timeout=10 --db="$NB_DB" "$@"; }
vdocker() {
    local n=$1
    shift
    "$DOCKER" -H "unix://$(docker_sock "$n")" "$@"
}
# `ovs-appctl -t ovs-vswitchd` for VM N: its daemons keep their pid files and control sockets
# (ovs-vswitchd.PID.ctl) in its run directory.
vappctl() {
    local n=$1
    shift
    OVS_RUNDIR=$(dir "$n") ovs-appctl -T 5 "$@"
}
unquote() { tr -d '"'; }
# The bridge holding a port, or nothing.
host_port_br() { hvsctl port-to-br "$1" 2>/dev/null || true; }
vm_port_br() { vsctl "$1" port-to-br "$2" 2>/dev/null || true; }

# in_vm N CMD...: CMD in VM N's network and mount namespaces, with VM N's OVS run directory.
in_vm() {
    local n=$1
    shift
    OVS_RUNDIR=$(dir "$n") nsenter --mount="$(dir "$n")/mnt" --net="/var/run/netns/$(ns "$n")" -- "$@"
}

# clean_exec CMD...: close every descriptor above 2, then exec CMD; only in a process of its
# own: `(clean_exec ...)` or `clean_exec ... &`. A daemon that inherits a descriptor holds
# whatever it is for its whole life: this script's lock, or the lock of whoever ran it
# (`flock FILE lab/vm.sh up` passes its lock on as descriptor 3).
clean_exec() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
}
# The prefix that starts a command in VM N's namespaces, for clean_exec.
vm_prefix() {
    echo env "OVS_RUNDIR=$(dir "$1")" nsenter --mount="$(dir "$1")/mnt" --net="/var/run/netns/$(ns "$1")" --
}

# tx_csum_off N DEV: `ethtool -K DEV tx off` in VM N's network namespace, only when it is on.
# The userspace datapath forwards what it reads from a veth or tap as it is: a packet the
# kernel left with a partial checksum (for the NIC to finish) arrives broken and TCP times
# out while ping works (crates/binding/src/offload.rs).
tx_csum_off() {
    nsenter --net="/var/run/netns/$(ns "$1")" /usr/bin/python3 -c '
import ctypes, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def ethtool(cmd, data=0):
    v = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    fcntl.ioctl(s.fileno(), 0x8946, struct.pack("16sP16x", sys.argv[1].encode(), ctypes.addressof(v)))
    return struct.unpack("II", v.raw[:8])[1]
if ethtool(0x16):  # ETHTOOL_GTXCSUM
    ethtool(0x17, 0)  # ETHTOOL_STXCSUM
' "$2"
}

is_marked() { [[ $(unquote) == "$MARK_VALUE" ]]; }

# ---------------------------------------------------------------------------------------
# The main host's side

main_ok() {
    local what
    { pidfile_alive /var/run/docker.pid dockerd && timeout 20 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; } ||
        fail main "the host's dockerd does not answer on /var/run/docker.sock: run \`make lab\` first"
    "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 ||
        fail main "the host's Docker has no image $IMAGE: run \`make lab\` first"
    hvsctl br-exists br-int 2>/dev/null ||
        fail main "the host's OVS does not answer or has no br-int: run \`make lab\` first"
    nbctl show >/dev/null 2>&1 || fail main "OVN Northbound does not answer at $NB_DB: run \`make lab\` first"
    ovn-sbctl --timeout=5 --db="$SB_DB" show >/dev/null 2>&1 ||
        fail main "OVN Southbound does not answer at $SB_DB: run \`make lab\` first"
    for what in ovn-northd ovn-controller; do
        pidfile_alive "/var/run/ovn/$what.pid" "$what" || fail main "$what is not running: run \`make lab\` first"
    done
}

up_switch() {
    if [[ -z $(nbctl --bare --columns=_uuid find Logical_Switch "name=$SWITCH") ]]; then
        nbctl ls-add "$SWITCH" -- set Logical_Switch "$SWITCH" "external_ids:$MARK_KEY=$MARK_VALUE"
        say "$SWITCH" "logical switch created"
    elif ! nbctl get Logical_Switch "$SWITCH" "external_ids:$MARK_KEY" 2>/dev/null | is_marked; then
        fail "$SWITCH" "a logical switch $SWITCH exists that vm.sh did not create (no external_ids:$MARK_KEY=$MARK_VALUE): remove it or run the VM lab elsewhere"
    fi
}

# The VM's own port, as Nova/Neutron would have made it.
up_lsp() {
    local n=$1 name want
    name=$(ns "$n")
    want="$(mac_of "$n") $(ip_of "$n")"
    if [[ -z $(nbctl --bare --columns=_uuid find Logical_Switch_Port "name=$name") ]]; then
        nbctl lsp-add "$SWITCH" "$name" -- lsp-set-addresses "$name" "$want" \
            -- lsp-set-port-security "$name" "$want" \
            -- set Logical_Switch_Port "$name" "external_ids:$MARK_KEY=$MARK_VALUE"
        say "$name" "logical port created on $SWITCH ($want)"
        return
    fi
    nbctl get Logical_Switch_Port "$name" "external_ids:$MARK_KEY" 2>/dev/null | is_marked ||
        fail "$name" "a Logical_Switch_Port $name exists that vm.sh did not create: remove it or run the VM lab elsewhere"
    # Put back what a test may have changed.
    if [[ $(nbctl lsp-get-addresses "$name") != "$want" || $(nbctl lsp-get-port-security "$name") != "$want" ]]; then
        nbctl lsp-set-addresses "$name" "$want" -- lsp-set-port-security "$name" "$want"
        say "$name" "addresses and port security reset to $want"
    fi
}

# ---------------------------------------------------------------------------------------
# One VM

pid_of() { alive_pid "$(dir "$1")/$2.pid" "$2"; }
ovsdb_running() { pid_of "$1" ovsdb-server >/dev/null && ovsdb-client --timeout=5 list-dbs "$(db "$1")" >/dev/null 2>&1; }
vswitchd_running() { pid_of "$1" ovs-vswitchd >/dev/null && vappctl "$1" -t ovs-vswitchd version >/dev/null 2>&1; }
dockerd_running() {
    pid_of "$1" dockerd >/dev/null &&
        timeout 20 "$DOCKER" -H "unix://$(docker_sock "$1")" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# The mount namespace is pinned on $dir/mnt; $dir is bound on itself with private propagation
# (a namespace file can only be pinned on a private mount, as `ip netns` does for /run/netns).
# mnt.ready says the namespace was set up completely.
mntns_ok() {
    local d
    d=$(dir "$1")
    [[ -f $d/mnt.ready && $(findmnt -rn -o FSTYPE --mountpoint "$d/mnt" 2>/dev/null) == nsfs ]]
}

# Runs inside the new namespaces (`vm.sh _setup-ns N`, under nsenter), once per namespace.
setup_ns() {
    local n=$1 d r target
    d=$(dir "$n")
    r=$d/vm-run
    # 1. The namespace started as a copy of the host's mounts. Copies of namespace files
    # (/run/netns, Docker's), other VMs' pins and the host Docker's overlay mounts would keep
    # those alive and busy after the host removed them: drop them here. The namespace is
    # private (unshare --propagation private), so nothing of this reaches the host.
    while read -r target; do
        umount -n -l "$target" 2>/dev/null || true
    done < <(awk '{print $5}' /proc/self/mountinfo | grep -E '^(/run/.|/var/run/.|/var/lib/docker(/|$))' | sort -r)
    # 2. The VM's /run: a tmpfs, so that nothing the host does in its /run (dockerd
    # re-creating /run/docker.sock, say) can reach through to the VM. A bind mount on a file
    # would not do: when the host unlinks the file the kernel detaches the mounts on it in
    # every namespace. Built aside, then moved over /run. `-n` everywhere: libmount would
    # record the mounts in /run/mount/utab, which is the host's (then gone from view).
    mkdir -p "$r"
    mount -n -t tmpfs -o mode=0755,size=64m "$(ns "$n")-run" "$r"
    mkdir -p "$r/kuryr-lab" "$r/ovn" "$r/openvswitch" "$r/docker/plugins" "$r/lock"
    chmod 1777 "$r/lock"
    mount -n --bind "$STATE_DIR" "$r/kuryr-lab"
    mount -n --bind /run/ovn "$r/ovn"
    mount -n --bind "$d" "$r/openvswitch"
    mount -n --bind "$d/plugins" "$r/docker/plugins"
    ln -s "$(docker_sock "$n")" "$r/docker.sock"
    # 3. /sys from inside the VM's network namespace (as `ip netns exec` does), keeping the
    # cgroup hierarchies Docker needs.
    mkdir "$r/.sys"
    mount -n -t sysfs "$(ns "$n")-sys" "$r/.sys"
    mount -n --rbind /sys/fs/cgroup "$r/.sys/fs/cgroup"
    umount -n -l /sys
    mount -n --move "$r/.sys" /sys
    rmdir "$r/.sys"
    mount -n --move "$r" /run
    # 4. /etc/docker: the VM's own (daemon.json, plugin specs, the engine key that gives the
    # VM's Docker an ID of its own).
    mount -n --bind "$d/docker-etc" /etc/docker
}

up_mntns() {
    local n=$1 d name
    d=$(dir "$n")
    name=$(ns "$n")
    mntns_ok "$n" && return 0
    # Daemons of an earlier, lost namespace would live on in it.
    stop_daemons "$n"
    if [[ $(findmnt -rn -o FSTYPE --mountpoint "$d/mnt" 2>/dev/null) == nsfs ]]; then
        umount "$d/mnt"
    fi
    rm -f "$d/mnt.ready"
    if ! findmnt -rn --mountpoint "$d" >/dev/null 2>&1; then
        mount --bind "$d" "$d"
    fi
    mount --make-private "$d"
    mkdir -p "$d/plugins" "$d/docker-etc/plugins"
    touch "$d/mnt"
    unshare --mount="$d/mnt" --propagation private true ||
        fail "$name" "could not create its mount namespace on $d/mnt"
    nsenter --mount="$d/mnt" --net="/var/run/netns/$name" -- "$SELF" _setup-ns "$n" >>"$(logs "$n")/setup-ns.log" 2>&1 ||
        fail "$name" "could not set up its mount namespace" "$(logs "$n")/setup-ns.log"
    touch "$d/mnt.ready"
    say "$name" "mount namespace created ($d/mnt)"
}

up_ovs() {
    local n=$1 d l name
    d=$(dir "$n")
    l=$(logs "$n")
    name=$(ns "$n")
    if ! ovsdb_running "$n"; then
        [[ -f $d/conf.db ]] || ovsdb-tool create "$d/conf.db" "$VSWITCH_SCHEMA"
        rm -f "$d/ovsdb-server.pid"
        # shellcheck disable=SC2046
        (clean_exec $(vm_prefix "$n") ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" \
            --pidfile="$d/ovsdb-server.pid" --log-file="$l/ovsdb-server.log" --detach 2>>"$l/start.log") ||
            fail "$name" "ovsdb-server did not start" "$l/start.log" "$l/ovsdb-server.log"
        wait_for "$WAIT" ovsdb_running "$n" || fail "$name" "ovsdb-server does not answer on $d/db.sock" "$l/ovsdb-server.log"
        vsctl "$n" --no-wait init
        vsctl "$n" --no-wait set Open_vSwitch . "external_ids:rundir=\"$d\"" \
            "external_ids:hostname=$name" "external_ids:system-id=$name"
        say "$name" "ovsdb-server started"
    fi
    if ! vswitchd_running "$n"; then
        rm -f "$d/ovs-vswitchd.pid"
        # shellcheck disable=SC2046
        (clean_exec $(vm_prefix "$n") ovs-vswitchd "$(db "$n")" --pidfile="$d/ovs-vswitchd.pid" \
            --log-file="$l/ovs-vswitchd.log" --detach 2>>"$l/start.log") ||
            fail "$name" "ovs-vswitchd did not start" "$l/start.log" "$l/ovs-vswitchd.log"
        wait_for "$WAIT" vswitchd_running "$n" || fail "$name" "ovs-vswitchd does not answer" "$l/ovs-vswitchd.log"
        say "$name" "ovs-vswitchd started"
    fi
}

# The NIC: veth kvmN-vif (a port of the host's br-int bound to the VM's logical port) to eth0.
up_nic() {
    local n=$1 name v mac
    name=$(ns "$n")
    v=$(vif "$n")
    mac=$(mac_of "$n")
    if ! ip link show "$v" >/dev/null 2>&1; then
        ip -n "$name" link del eth0 2>/dev/null || true
        # A port left in either database from an old pair stays dead with the userspace
        # datapath when a new device of that name appears: take them out so they are added
        # anew (eth0 goes with the VM's bridge, made again below).
        hvsctl --if-exists del-port br-int "$v"
        vsctl "$n" --if-exists del-br "$BRIDGE"
        ip link add "$v" type veth peer name eth0 address "$mac" netns "$name"
        say "$name" "veth $v <-> eth0 created"
    fi
    [[ $(ip -n "$name" -br link show dev eth0 | awk '{print $3}') == "$mac" ]] || ip -n "$name" link set eth0 address "$mac"
    ip link set "$v" up
    ip -n "$name" link set eth0 up
    if [[ $(host_port_br "$v") != br-int ]]; then
        hvsctl --may-exist add-port br-int "$v" \
            -- set Port "$v" "external_ids:$MARK_KEY=$MARK_VALUE" \
            -- set Interface "$v" "external_ids:iface-id=$name" "external_ids:$MARK_KEY=$MARK_VALUE"
        say "$name" "$v added to the host's br-int (iface-id $name)"
    elif [[ $(hvsctl get Interface "$v" external_ids:iface-id | unquote) != "$name" ]]; then
        hvsctl set Interface "$v" "external_ids:iface-id=$name"
    fi
}

# eth0 into breth0, inside the VM, the way an operator would do it in a real VM.
up_bridge() {
    local n=$1 name l addr
    name=$(ns "$n")
    l=$(logs "$n")
    addr="$(ip_of "$n")/24"
    if [[ $(vm_port_br "$n" eth0) != "$BRIDGE" ]]; then
        ip -n "$name" -4 addr show dev eth0 | grep -qF " $addr " || ip -n "$name" addr add "$addr" dev eth0
        tx_csum_off "$n" eth0
        in_vm "$n" "$KURYR" host nics-to-bridge eth0 --bridge "$BRIDGE" --datapath netdev --ovsdb "$(db "$n")" \
            >"$l/nics-to-bridge.log" 2>&1 || fail "$name" "kuryr host nics-to-bridge eth0 failed" "$l/nics-to-bridge.log"
        say "$name" "eth0 moved into $BRIDGE ($addr)"
    fi
    wait_for 10 ip -n "$name" link show "$BRIDGE" >/dev/null 2>&1 || fail "$name" "$BRIDGE did not appear" "$l/ovs-vswitchd.log"
    # After an ovs-vswitchd restart the bridge's device is new: address and state are gone.
    ip -n "$name" link set "$BRIDGE" up
    ip -n "$name" -4 addr show dev "$BRIDGE" | grep -qF " $addr " || ip -n "$name" addr add "$addr" dev "$BRIDGE"
    tx_csum_off "$n" "$BRIDGE"
    tx_csum_off "$n" eth0
    # With the userspace datapath eth0 stays a live kernel interface with the VM's MAC: the
    # kernel would answer ARP and IP it reads there too (duplicate replies). Only breth0
    # speaks for the VM.
    in_vm "$n" sysctl -q -w net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.rp_filter=1 \
        net.ipv6.conf.eth0.disable_ipv6=1 >/dev/null
}

underlay_ok() {
    local n=$1 ext
    ext=$(vsctl "$n" get Open_vSwitch . external_ids 2>/dev/null) || return 1
    [[ $ext == *'kuryr-mode=underlay'* && $ext == *"kuryr-bridge=$BRIDGE"* &&
        $ext == *"kuryr-parent-port=$(ns "$n")"* ]] &&
        [[ $(vsctl "$n" get-fail-mode "$BRIDGE") != secure ]] &&
        [[ $(vsctl "$n" get Port "$BRIDGE" vlan_mode) == access && $(vsctl "$n" get Port "$BRIDGE" tag) == '[]' ]]
}

# The underlay settings: `kuryr host init --underlay --parent-port` where the binary has it,
# otherwise the same with ovs-vsctl; $dir/underlay says which path was taken.
up_underlay() {
    local n=$1 d name l how
    d=$(dir "$n")
    name=$(ns "$n")
    l=$(logs "$n")
    underlay_ok "$n" && return 0
    if "$KURYR" host init --help 2>/dev/null | grep -q -- '--parent-port'; then
        # Path 1: kuryr host init --underlay --parent-port (leaves breth0 fail_mode standalone,
        # LOCAL port access without a tag, writes the kuryr-* external_ids).
        how="kuryr host init"
        in_vm "$n" "$KURYR" host init --underlay --bridge "$BRIDGE" --parent-port "$name" --nb "$NB_DB" \
            --ovsdb "$(db "$n")" >"$l/host-init.log" 2>&1 || fail "$name" "kuryr host init --underlay failed" "$l/host-init.log"
    else
        # Path 2: this kuryr has no --parent-port yet; ovs-vsctl writes the same settings.
        # breth0 must not be fail_mode secure: without a controller it would drop everything.
        how="ovs-vsctl (kuryr host init has no --parent-port)"
        [[ $(vsctl "$n" get-fail-mode "$BRIDGE") != secure ]] || vsctl "$n" set-fail-mode "$BRIDGE" standalone
        vsctl "$n" set Port "$BRIDGE" vlan_mode=access -- clear Port "$BRIDGE" tag \
            -- set Open_vSwitch . external_ids:kuryr-mode=underlay "external_ids:kuryr-bridge=$BRIDGE" \
            "external_ids:kuryr-parent-port=$name" "external_ids:kuryr-nb-remote=\"$NB_DB\""
    fi
    echo "$how" >"$d/underlay"
    underlay_ok "$n" || fail "$name" "underlay settings not as expected after $how (want breth0 not fail_mode secure, Port breth0 vlan_mode=access without tag, external_ids kuryr-mode/kuryr-bridge/kuryr-parent-port): see \`lab/vm.sh exec $n -- ovs-vsctl list Open_vSwitch\`" "$l/host-init.log"
    say "$name" "underlay settings written ($how)"
}

up_dockerd() {
    local n=$1 d l name pid deadline
    d=$(dir "$n")
    l=$(logs "$n")
    name=$(ns "$n")
    dockerd_running "$n" && return 0
    if pid=$(pid_of "$n" dockerd); then
        wait_for "$WAIT" dockerd_running "$n" || fail "$name" "dockerd (pid $pid) is alive but does not answer" "$l/dockerd.log"
        return 0
    fi
    # dockerd refuses to start on a pid file naming a live process, and a stale pid file of
    # its containerd makes it wait 15 s.
    rm -f "$d/dockerd.pid"
    pidfile_alive "$d/docker-exec/containerd/containerd.pid" containerd || rm -f "$d/docker-exec/containerd/containerd.pid"
    mkdir -p "$(data "$n")/docker" "$d/docker-exec" "$d/docker-etc/plugins"
    # Its own configuration file, so that the host's /etc/docker/daemon.json never applies;
    # its containers in a cgroup of their own, so that `down` finds every process of the VM.
    printf '{\n  "cgroup-parent": "/%s",\n  "live-restore": false\n}\n' "$name" >"$d/docker-etc/daemon.json"
    echo "=== $(date -Is) vm.sh up: starting dockerd" >>"$l/dockerd.log"
    # setsid: its own session, so that ^C on `up` does not take it down. The background
    # process itself becomes dockerd (clean_exec: no function subshell waits behind it
    # holding descriptors).
    # shellcheck disable=SC2046
    clean_exec setsid $(vm_prefix "$n") "$DOCKERD" \
        --data-root "$(data "$n")/docker" --exec-root "$d/docker-exec" -H "unix://$(docker_sock "$n")" \
        --pidfile "$d/dockerd.pid" --config-file "$d/docker-etc/daemon.json" \
        --bridge none --iptables=false --ip6tables=false </dev/null >>"$l/dockerd.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + WAIT))
    until dockerd_running "$n"; do
        kill -0 "$pid" 2>/dev/null || fail "$name" "dockerd exited while starting" "$l/dockerd.log"
        ((SECONDS < deadline)) || fail "$name" "dockerd did not answer within ${WAIT}s" "$l/dockerd.log"
        sleep 0.2
    done
    say "$name" "dockerd started (unix://$(docker_sock "$n"))"
}

up_image() {
    local n=$1 name l want
    name=$(ns "$n")
    l=$(logs "$n")
    want=$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE")
    [[ $(vdocker "$n" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null) == "$want" ]] && return 0
    "$DOCKER" save "$IMAGE" | vdocker "$n" load >"$l/image.log" 2>&1 ||
        fail "$name" "loading $IMAGE into its Docker failed" "$l/image.log" "$l/dockerd.log"
    say "$name" "$IMAGE loaded"
}

up_one() {
    local n=$1 name
    name=$(ns "$n")
    mkdir -p "$(dir "$n")" "$(logs "$n")" "$(data "$n")"
    if [[ ! -e /var/run/netns/$name ]]; then
        ip netns add "$name"
        say "$name" "network namespace created"
    fi
    ip -n "$name" link set lo up
    up_mntns "$n"
    up_ovs "$n"
    up_lsp "$n"
    up_nic "$n"
    up_bridge "$n"
    up_underlay "$n"
    up_dockerd "$n"
    up_image "$n"
    up_api "$n"
    say "$name" "ready ($(ip_of "$n") on $SWITCH, docker unix://$(docker_sock "$n"), ovsdb $(db "$n"))"
}

# up_api_host: the host side of the API forwarders (one per port, shared by every VM).
up_api_host() {
    local p
    mkdir -p "$API_DIR"
    for p in "${API_PORTS[@]}"; do
        pidfile_alive "$API_DIR/$p.pid" socat && continue
        (clean_exec setsid socat "UNIX-LISTEN:$API_DIR/$p.sock,fork,unlink-early,mode=600" \
            "TCP:127.0.0.1:$p" </dev/null >>"$LOG_ROOT/vm-api.log" 2>&1) &
        echo $! >"$API_DIR/$p.pid"
    done
}

# up_api N: VM N's side, listening on 127.0.0.1 in the VM (stopped with the VM's processes).
up_api() {
    local n=$1 d p
    d=$(dir "$n")
    for p in "${API_PORTS[@]}"; do
        pidfile_alive "$d/api-$p.pid" socat && continue
        # shellcheck disable=SC2046
        (clean_exec setsid $(vm_prefix "$n") socat "TCP-LISTEN:$p,bind=127.0.0.1,fork,reuseaddr" \
            "UNIX-CONNECT:$API_DIR/$p.sock" </dev/null >>"$(logs "$n")/api.log" 2>&1) &
        echo $! >"$d/api-$p.pid"
    done
}

down_api_host() {
    local p pid
    for p in "${API_PORTS[@]}"; do
        if pid=$(alive_pid "$API_DIR/$p.pid" socat); then stop_pids 5 "$pid"; fi
    done
    rm -rf "$API_DIR"
}

lsp_up() { [[ $(nbctl get Logical_Switch_Port "$(ns "$1")" up 2>/dev/null) == true ]]; }
ping_vm() { in_vm "$1" ping -c 1 -W 1 -q "$(ip_of "$2")" >/dev/null 2>&1; }

check_path() {
    local n
    for ((n = 1; n <= COUNT; n++)); do
        wait_for "$WAIT" lsp_up "$n" ||
            fail "$(ns "$n")" "logical port $(ns "$n") is not up: the host's ovn-controller did not bind $(vif "$n")" /var/log/ovn/ovn-controller.log
    done
    if ((COUNT < 2)); then
        say "data path" "not checked (one VM); logical port kuryr-vm-1 is up"
        return 0
    fi
    wait_for 15 ping_vm 1 2 ||
        fail "data path" "VM 1 ($(ip_of 1)) cannot ping VM 2 ($(ip_of 2)) through OVN (logical switch $SWITCH); try \`lab/vm.sh exec 1 -- ovs-appctl dpctl/dump-flows\` and \`ovn-trace\`" \
            /var/log/ovn/ovn-controller.log "$(logs 1)/ovs-vswitchd.log" "$(logs 2)/ovs-vswitchd.log"
    say "data path" "VM 1 ($(ip_of 1)) pings VM 2 ($(ip_of 2)) through OVN"
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
        for p; do kill -0 "$p" 2>/dev/null && return 1; done
        return 0
    }
    wait_for "$secs" all_gone "$@" || kill -KILL "$@" 2>/dev/null || true
}

stop_daemons() {
    local n=$1 d pid ids pids=()
    d=$(dir "$n")
    # dockerd stops its containers and its containerd; killed first, its containers do not
    # take the 10 s stop grace each (their network plugin, if it runs, still sees them go).
    if pid=$(pid_of "$n" dockerd); then
        ids=$(timeout 10 "$DOCKER" -H "unix://$(docker_sock "$n")" ps -q 2>/dev/null) || ids=
        # shellcheck disable=SC2086
        [[ -z $ids ]] || timeout 30 "$DOCKER" -H "unix://$(docker_sock "$n")" kill $ids >/dev/null 2>&1 || true
        pids+=("$pid")
    fi
    if pid=$(pid_of "$n" ovs-vswitchd); then pids+=("$pid"); fi
    if pid=$(pid_of "$n" ovsdb-server); then pids+=("$pid"); fi
    stop_pids "$WAIT" "${pids[@]}"
    if pid=$(alive_pid "$d/docker-exec/containerd/containerd.pid" containerd); then stop_pids 10 "$pid"; fi
}

# Every process still in the VM: in its network or mount namespace (a containerd shim, a
# daemon a test started there), or in its containers' cgroup.
vm_pids() {
    local n=$1 d netns p
    d=$(dir "$n")
    netns=/var/run/netns/$(ns "$n")
    [[ $(findmnt -rn -o FSTYPE --mountpoint "$d/mnt" 2>/dev/null) == nsfs ]] || d=
    [[ -e $netns ]] || netns=
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == "$$" || $p == "$BASHPID" ]] && continue
        if [[ -n $d && /proc/$p/ns/mnt -ef $d/mnt ]] || [[ -n $netns && /proc/$p/ns/net -ef $netns ]]; then
            echo "$p"
        fi
    done
    cat /sys/fs/cgroup/*/"$(ns "$n")"/{,*/}cgroup.procs 2>/dev/null || true
}

kill_rest() {
    local n=$1 pids
    pids=$(vm_pids "$n" | sort -u | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    say "$(ns "$n")" "stopping processes left in the VM: $pids"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    wait_for 5 eval "[[ -z \$(vm_pids $n) ]]" && return 0
    # shellcheck disable=SC2046
    kill -KILL $(vm_pids "$n") 2>/dev/null || true
    sleep 0.5
}

down_one() {
    local n=$1 d name v cg nested
    d=$(dir "$n")
    name=$(ns "$n")
    v=$(vif "$n")
    stop_daemons "$n"
    kill_rest "$n"
    # The containers' cgroups (children first).
    for cg in /sys/fs/cgroup/*/"$name"; do
        [[ -d $cg ]] || continue
        find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$cg" 2>/dev/null || true
    done
    # The NIC's host end, and its port if this script made it.
    if hvsctl --if-exists get Port "$v" "external_ids:$MARK_KEY" 2>/dev/null | is_marked; then
        hvsctl --if-exists del-port br-int "$v" || true
    fi
    ip link del "$v" 2>/dev/null || true
    # The VM's logical port (containers' ports whose parent it is are not this script's).
    if nbctl get Logical_Switch_Port "$name" "external_ids:$MARK_KEY" 2>/dev/null | is_marked; then
        nested=$(nbctl --bare --columns=name find Logical_Switch_Port "parent_name=$name" 2>/dev/null | tr '\n' ' ')
        [[ -z ${nested// /} ]] || say "$name" "left alone, not made by vm.sh: logical ports whose parent is $name: $nested"
        nbctl --if-exists lsp-del "$name" || true
    fi
    # The namespaces and the files.
    if [[ $(findmnt -rn -o FSTYPE --mountpoint "$d/mnt" 2>/dev/null) == nsfs ]]; then umount "$d/mnt"; fi
    while findmnt -rn --mountpoint "$d" >/dev/null 2>&1; do umount "$d" || break; done
    [[ -e /var/run/netns/$name ]] && ip netns delete "$name"
    rm -rf "$d" "$(data "$n")"
    say "$name" removed
}

down_switch() {
    local ports
    nbctl get Logical_Switch "$SWITCH" "external_ids:$MARK_KEY" 2>/dev/null | is_marked || return 0
    ports=$(nbctl --bare --columns=ports list Logical_Switch "$SWITCH" | tr -d '[:space:]')
    if [[ -n $ports ]]; then
        say "$SWITCH" "left alone: it still has ports vm.sh did not make ($(nbctl lsp-list "$SWITCH" | awk '{print $2}' | tr '\n' ' '))"
        return 0
    fi
    nbctl --if-exists ls-del "$SWITCH"
    say "$SWITCH" "logical switch removed"
}

# ---------------------------------------------------------------------------------------

cmd_up() {
    need_root
    check_count
    take_lock
    local k n
    k=$(command -v "$KURYR") || fail vm "no kuryr binary ($KURYR): set KURYR=path/to/kuryr or run \`make lab-vm\`"
    # Absolute: commands inside a VM start in another working directory.
    KURYR=$(realpath "$k")
    main_ok
    up_switch
    up_api_host
    for ((n = 1; n <= COUNT; n++)); do
        up_one "$n"
    done
    check_path
}

cmd_down() {
    need_root
    local d n seen=" " only=" $* "
    for n in "$@"; do
        [[ $n =~ ^[1-9]$ ]] || fail vm "down $n: give VM numbers from 1 to 9 (none: all)"
    done
    take_lock
    # Every VM there is (whatever LAB_VMS says now), or the ones named.
    for d in "$STATE_DIR"/vm-[1-9]; do
        [[ -d $d ]] || continue
        n=${d##*-}
        (($# == 0)) || [[ $only == *" $n "* ]] || continue
        down_one "$n"
        seen+="$n "
    done
    for n in 1 2 3 4 5 6 7 8 9; do
        [[ $seen == *" $n "* ]] && continue
        (($# == 0)) || [[ $only == *" $n "* ]] || continue
        if [[ -e /var/run/netns/$(ns "$n") ]] || ip link show "$(vif "$n")" >/dev/null 2>&1 ||
            [[ -d $(data "$n") ]]; then
            down_one "$n"
            seen+="$n "
        fi
    done
    compgen -G "$STATE_DIR/vm-[1-9]" >/dev/null || down_api_host
    if nbctl show >/dev/null 2>&1; then
        for n in 1 2 3 4 5 6 7 8 9; do
            [[ $seen == *" $n "* ]] && continue
            (($# == 0)) || [[ $only == *" $n "* ]] || continue
            if nbctl get Logical_Switch_Port "$(ns "$n")" "external_ids:$MARK_KEY" 2>/dev/null | is_marked; then
                nbctl --if-exists lsp-del "$(ns "$n")"
                say "$(ns "$n")" "logical port removed"
            fi
        done
        # The switch goes with the last VM.
        compgen -G "$STATE_DIR/vm-[1-9]" >/dev/null || down_switch
    else
        say "$SWITCH" "OVN Northbound does not answer: logical switch and ports not checked"
    fi
}

cmd_status() {
    need_root
    check_count
    local n rc=0 name d ext
    if nbctl get Logical_Switch "$SWITCH" "external_ids:$MARK_KEY" 2>/dev/null | is_marked; then
        say "$SWITCH" "logical switch present ($(nbctl lsp-list "$SWITCH" | wc -l) ports)"
    else
        say "$SWITCH" "logical switch absent"
        rc=1
    fi
    for ((n = 1; n <= COUNT; n++)); do
        name=$(ns "$n")
        d=$(dir "$n")
        if [[ ! -e /var/run/netns/$name ]]; then
            say "$name" absent
            rc=1
            continue
        fi
        if mntns_ok "$n"; then
            say "$name namespaces" "network $name, mount $d/mnt"
        else
            say "$name namespaces" "network $name present, mount namespace missing"
            rc=1
        fi
        if ovsdb_running "$n" && vswitchd_running "$n"; then
            say "$name ovs" "ovsdb-server and ovs-vswitchd running ($(db "$n"))"
        else
            say "$name ovs" "a daemon is not running ($(db "$n"))"
            rc=1
        fi
        if [[ $(host_port_br "$(vif "$n")") == br-int ]] && lsp_up "$n" &&
            [[ $(vm_port_br "$n" eth0 2>/dev/null) == "$BRIDGE" ]] &&
            ip -n "$name" -4 addr show dev "$BRIDGE" 2>/dev/null | grep -qF " $(ip_of "$n")/24 "; then
            say "$name nic" "$(vif "$n") on br-int (logical port $name up) == eth0 in $BRIDGE $(ip_of "$n")/24 $(mac_of "$n")"
        else
            say "$name nic" "incomplete (want $(vif "$n") on br-int, logical port $name up, eth0 in $BRIDGE with $(ip_of "$n")/24)"
            rc=1
        fi
        if underlay_ok "$n"; then
            ext=$(vsctl "$n" get Open_vSwitch . external_ids:kuryr-parent-port | unquote)
            say "$name underlay" "$BRIDGE, parent port $ext (written by $(cat "$d/underlay" 2>/dev/null || echo '?'))"
        else
            say "$name underlay" "settings missing or wrong"
            rc=1
        fi
        if dockerd_running "$n"; then
            if vdocker "$n" image inspect "$IMAGE" >/dev/null 2>&1; then
                say "$name dockerd" "running (unix://$(docker_sock "$n"), data root $(data "$n")/docker, $IMAGE present)"
            else
                say "$name dockerd" "running (unix://$(docker_sock "$n")), $IMAGE missing"
                rc=1
            fi
        else
            say "$name dockerd" "not running"
            rc=1
        fi
    done
    if ((rc == 0 && COUNT >= 2)); then
        if ping_vm 1 2; then
            say "data path" "VM 1 ($(ip_of 1)) pings VM 2 ($(ip_of 2))"
        else
            say "data path" "VM 1 ($(ip_of 1)) cannot ping VM 2 ($(ip_of 2))"
            rc=1
        fi
    fi
    return "$rc"
}

# exec N -- CMD...: the namespaces are entered by nsenter, which then executes CMD: its exit
# status and standard streams are CMD's. The working directory is kept.
cmd_exec() {
    need_root
    local n=${1:-}
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
    { mntns_ok "$n" && [[ -e /var/run/netns/$(ns "$n") ]]; } ||
        fail "$(ns "$n")" "VM $n is not up: run \`make lab-vm\` (or LAB_VMS=$n lab/vm.sh up)"
    exec nsenter --mount="$(dir "$n")/mnt" --net="/var/run/netns/$(ns "$n")" --wd="$PWD" -- \
        env -u DOCKER_HOST -u DOCKER_CONTEXT -u OVS_RUNDIR -u OVS_DBDIR "$@"
}

case ${1:-} in
    up) cmd_up ;;
    down)
        shift
        cmd_down "$@"
        ;;
    status) cmd_status ;;
    exec)
        shift
        cmd_exec "$@"
        ;;
    _setup-ns) setup_ns "$2" ;;
    *)
        echo "usage: $0 up|down [N...]|status|exec N -- CMD..." >&2
        exit 2
        ;;
esac
