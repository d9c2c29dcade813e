#!/usr/bin/env bash
# Extra OVN chassis on this machine, for tests that span hosts.
#
#   lab/chassis.sh up      bring up the extra chassis (idempotent; needs `make lab` first)
#   lab/chassis.sh down    stop and remove everything `up` made, restore the main chassis
#   lab/chassis.sh status  one line per part; exit 1 if any is missing
#
# Chassis N (1, 2, ...) is the network namespace kuryr-chassis-N with its own ovsdb-server,
# ovs-vswitchd (userspace datapath) and ovn-controller (system-id kuryr-chassis-N), all
# keeping their files in /run/kuryr-lab/chassis-N. The underlay is a netdev bridge br-phy on
# every chassis, main host included, carrying the tunnel IP on its own interface; a veth
# pair (kchN-main on the main br-phy, kchN-phy on the chassis' br-phy) is the wire.
#
#   main host   br-phy 172.31.250.1/24 ----- kch1-main == kch1-phy ----- br-phy 172.31.250.11/24
#                                      \---- kch2-main == kch2-phy ----- br-phy 172.31.250.12/24
#
# What `up` changes on the main chassis, and `down` puts back: the OVS bridge br-phy is
# created (marked external_ids:kuryr-lab=chassis) with 172.31.250.1/24, and
# Open_vSwitch external_ids:ovn-encap-ip becomes 172.31.250.1 (tunnels leave through
# br-phy); the previous ovn-encap-ip and ovn-encap-type are saved in
# /run/kuryr-lab/chassis/main and restored by `down`.
#
# Each chassis is configured with `kuryr host init --ovsdb unix:<its db>`: KURYR names the
# binary (default: `kuryr` on PATH). Knobs: LAB_CHASSIS (how many, default 2, at most 9),
# LAB_WAIT (seconds to wait for a daemon, default 60).
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

readonly STATE_DIR=/run/kuryr-lab
readonly MAIN_STATE=$STATE_DIR/chassis/main
readonly LOG_ROOT=/var/log/kuryr-lab
readonly NB_DB=unix:/var/run/ovn/ovnnb_db.sock
readonly SB_DB=unix:/var/run/ovn/ovnsb_db.sock
readonly VSWITCH_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
readonly NET=172.31.250
readonly MAIN_IP=$NET.1
readonly PHY=br-phy
readonly MARK=external_ids:kuryr-lab=chassis

COUNT=${LAB_CHASSIS:-2}
WAIT=${LAB_WAIT:-60}
KURYR=${KURYR:-kuryr}






take_lock() {
    mkdir -p "$STATE_DIR/chassis" "$LOG_ROOT"
    lock_or_fail "$STATE_DIR/chassis/lock" 600 chassis
}

check_count() {
    [[ $COUNT =~ ^[1-9]$ ]] || fail chassis "LAB_CHASSIS=$COUNT: give a number from 1 to 9"
}

# Per-chassis names.
ns() { echo "kuryr-chassis-$1"; }
dir() { echo "$STATE_DIR/chassis-$1"; }
logs() { echo "$LOG_ROOT/chassis-$1"; }
ip_of() { echo "$NET.$((10 + $1))"; }
# A fixed MAC for chassis N's br-phy: re-created chassis keep it, so a tunnel neighbour
# another vswitchd learned earlier is still right.
mac_of() { printf '02:6b:72:fa:00:%02x\n' "$((10 + $1))"; }
db() { echo "unix:$(dir "$1")/db.sock"; }
vsctl() {
    local n=$1
    shift
    ovs-vsctl --timeout=5 --db="$(db "$n")" "$@"
}
# The daemons of a chassis run with its folder as their run directory, so the bridges'
# management sockets (br-int.mgmt, used by ovn-controller) do not collide with the main
# host's in /var/run/openvswitch.
in_ns() {
    local n=$1
    shift
    OVS_RUNDIR=$(dir "$n") OVN_RUNDIR=$(dir "$n") ip netns exec "$(ns "$n")" "$@"
}

# ---------------------------------------------------------------------------------------
# The main host's side

main_ok() {
    ovs-vsctl --timeout=5 br-exists br-int ||
        fail main "the lab is not running (no br-int in the main OVS): run \`make lab\` first"
    ovn-sbctl --timeout=5 --db="$SB_DB" show >/dev/null ||
        fail main "OVN Southbound does not answer at $SB_DB: run \`make lab\` first"
}

ext_get() { ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . "external_ids:$1" | tr -d '"'; }

up_main() {
    if ! ovs-vsctl --timeout=5 br-exists "$PHY"; then
        ovs-vsctl --timeout=5 add-br "$PHY" -- set Bridge "$PHY" datapath_type=netdev "$MARK" ||
            fail "$PHY" "could not create it in the main OVS" /var/log/openvswitch/ovs-vswitchd.log
        say "main $PHY" created
    elif [[ $(ovs-vsctl --timeout=5 --if-exists get Bridge "$PHY" external_ids:kuryr-lab) != '"chassis"' &&
        $(ovs-vsctl --timeout=5 --if-exists get Bridge "$PHY" external_ids:kuryr-lab) != chassis ]]; then
        fail "$PHY" "a bridge $PHY exists in the main OVS that chassis.sh did not create: remove it or run the chassis lab elsewhere"
    fi
    wait_for 10 ip link show "$PHY" >/dev/null 2>&1 || fail "$PHY" "its interface did not appear"
    ip link set "$PHY" up
    ip -4 addr show dev "$PHY" | grep -qF " $MAIN_IP/24 " || ip addr add "$MAIN_IP/24" dev "$PHY"
    if [[ ! -f $MAIN_STATE ]]; then
        printf 'encap-ip=%s\nencap-type=%s\n' "$(ext_get ovn-encap-ip)" "$(ext_get ovn-encap-type)" >"$MAIN_STATE"
    fi
    if [[ $(ext_get ovn-encap-ip) != "$MAIN_IP" ]]; then
        "$KURYR" host set-tep "$MAIN_IP" || fail main "kuryr host set-tep $MAIN_IP failed"
        say main "ovn-encap-ip set to $MAIN_IP (was $(sed -n 's/^encap-ip=//p' "$MAIN_STATE"))"
    else
        say main "ovn-encap-ip already $MAIN_IP"
    fi
}

down_main() {
    local was_ip was_type
    if [[ -f $MAIN_STATE ]]; then
        was_ip=$(sed -n 's/^encap-ip=//p' "$MAIN_STATE")
        was_type=$(sed -n 's/^encap-type=//p' "$MAIN_STATE")
        if ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
            # Only what this script set is put back; a value someone changed since is theirs.
            if [[ $(ext_get ovn-encap-ip) == "$MAIN_IP" ]]; then
                ovs-vsctl --timeout=5 set Open_vSwitch . "external_ids:ovn-encap-ip=\"${was_ip:-127.0.0.1}\""
                say main "ovn-encap-ip restored to ${was_ip:-127.0.0.1}"
            fi
            if [[ -n $was_type && $(ext_get ovn-encap-type) != "$was_type" ]]; then
                ovs-vsctl --timeout=5 set Open_vSwitch . "external_ids:ovn-encap-type=\"$was_type\""
                say main "ovn-encap-type restored to $was_type"
            fi
            rm -f "$MAIN_STATE"
        else
            # Kept: the next `down` with the main OVS running puts them back.
            say main "OVS not running: ovn-encap-ip/type not restored yet (kept in $MAIN_STATE)"
        fi
    fi
    if ovs-vsctl --timeout=5 br-exists "$PHY" 2>/dev/null; then
        if [[ $(ovs-vsctl --timeout=5 --if-exists get Bridge "$PHY" external_ids:kuryr-lab | tr -d '"') == chassis ]]; then
            ovs-vsctl --timeout=5 del-br "$PHY"
            say "main $PHY" removed
        else
            say "main $PHY" "left alone (not created by chassis.sh)"
        fi
    fi
}

# ---------------------------------------------------------------------------------------
# One chassis

ctl_ovsdb() { echo "$(dir "$1")/ovsdb-server.ctl"; }
ctl_vswitchd() { echo "$(dir "$1")/ovs-vswitchd.ctl"; }

# list-dbs, not `ovs-vsctl show`: on a fresh database (no Open_vSwitch row yet) show waits
# for its timeout.
ovsdb_running() { pidfile_alive "$(dir "$1")/ovsdb-server.pid" ovsdb-server && ovsdb-client --timeout=5 list-dbs "$(db "$1")" >/dev/null 2>&1; }
vswitchd_running() {
    pidfile_alive "$(dir "$1")/ovs-vswitchd.pid" ovs-vswitchd &&
        ovs-appctl -T 5 -t "$(ctl_vswitchd "$1")" version >/dev/null 2>&1
}
controller_ctl() {
    local pid
    pid=$(cat "$(dir "$1")/ovn-controller.pid" 2>/dev/null) || return 1
    echo "$(dir "$1")/ovn-controller.$pid.ctl"
}
controller_running() {
    local ctl
    pidfile_alive "$(dir "$1")/ovn-controller.pid" ovn-controller && ctl=$(controller_ctl "$1") &&
        ovn-appctl -T 5 -t "$ctl" version >/dev/null 2>&1
}
chassis_ready() {
    local ctl
    ctl=$(controller_ctl "$1") &&
        [[ $(ovn-appctl -T 5 -t "$ctl" connection-status 2>/dev/null) == connected ]] &&
        [[ -n $(ovn-sbctl --timeout=5 --db="$SB_DB" --bare --columns=_uuid find Chassis "name=\"$(ns "$1")\"") ]]
}

up_one() {
    local n=$1 d l name main_end phy_end
    d=$(dir "$n")
    l=$(logs "$n")
    name=$(ns "$n")
    main_end="kch$n-main"
    phy_end="kch$n-phy"
    mkdir -p "$d" "$l"

    # 1. The namespace, with loopback up.
    if [[ ! -e /var/run/netns/$name ]]; then
        ip netns add "$name"
        say "$name" "namespace created"
    fi
    ip -n "$name" link set lo up

    # 2. Its Open_vSwitch database and ovsdb-server.
    if ! ovsdb_running "$n"; then
        [[ -f $d/conf.db ]] || ovsdb-tool create "$d/conf.db" "$VSWITCH_SCHEMA"
        rm -f "$d/ovsdb-server.pid"
        in_ns "$n" ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" \
            --pidfile="$d/ovsdb-server.pid" --unixctl="$(ctl_ovsdb "$n")" \
            --log-file="$l/ovsdb-server.log" --detach 9>&- 2>>"$l/start.log" ||
            fail "$name" "ovsdb-server did not start" "$l/ovsdb-server.log"
        wait_for "$WAIT" ovsdb_running "$n" || fail "$name" "ovsdb-server does not answer on $d/db.sock" "$l/ovsdb-server.log"
        vsctl "$n" --no-wait init
        vsctl "$n" --no-wait set Open_vSwitch . "external_ids:rundir=\"$d\"" "external_ids:hostname=$name"
        say "$name" "ovsdb-server started"
    fi

    # 3. ovs-vswitchd.
    if ! vswitchd_running "$n"; then
        rm -f "$d/ovs-vswitchd.pid"
        in_ns "$n" ovs-vswitchd "$(db "$n")" --pidfile="$d/ovs-vswitchd.pid" \
            --unixctl="$(ctl_vswitchd "$n")" --log-file="$l/ovs-vswitchd.log" --detach 9>&- 2>>"$l/start.log" ||
            fail "$name" "ovs-vswitchd did not start" "$l/ovs-vswitchd.log"
        wait_for "$WAIT" vswitchd_running "$n" || fail "$name" "ovs-vswitchd does not answer" "$l/ovs-vswitchd.log"
        say "$name" "ovs-vswitchd started"
    fi

    # 4. The wire: a veth pair, one end on each side's br-phy.
    if ! ip link show "$main_end" >/dev/null 2>&1; then
        ip -n "$name" link del "$phy_end" 2>/dev/null || true
        # A port left in either database from the old pair stays dead with the userspace
        # datapath when a new device of that name appears: take it out so it is added anew.
        ovs-vsctl --timeout=5 --if-exists del-port "$PHY" "$main_end"
        if ovsdb_running "$n"; then
            vsctl "$n" --if-exists del-port "$PHY" "$phy_end"
        fi
        ip link add "$main_end" type veth peer name "$phy_end" netns "$name"
        say "$name" "veth $main_end <-> $phy_end created"
    fi
    ip link set "$main_end" up
    ip -n "$name" link set "$phy_end" up
    ovs-vsctl --timeout=5 --may-exist add-port "$PHY" "$main_end" -- set Port "$main_end" "$MARK"
    vsctl "$n" --may-exist add-br "$PHY" -- set Bridge "$PHY" datapath_type=netdev \
        "other_config:hwaddr=\"$(mac_of "$n")\"" -- --may-exist add-port "$PHY" "$phy_end"
    wait_for 10 ip -n "$name" link show "$PHY" >/dev/null 2>&1 || fail "$name" "$PHY did not appear" "$l/ovs-vswitchd.log"
    ip -n "$name" link set "$PHY" up
    ip -n "$name" -4 addr show dev "$PHY" | grep -qF " $(ip_of "$n")/24 " ||
        ip -n "$name" addr add "$(ip_of "$n")/24" dev "$PHY"

    # 5. The chassis settings, written the way an operator would.
    "$KURYR" host init --ovsdb "$(db "$n")" --bridge br-int --overlay --tep "$(ip_of "$n")" \
        --encap "$(ext_get ovn-encap-type)" --sb "$SB_DB" --nb "$NB_DB" --datapath netdev \
        --system-id "$name" >"$l/host-init.log" 2>&1 ||
        fail "$name" "kuryr host init failed" "$l/host-init.log"

    # 6. ovn-controller.
    if ! controller_running "$n"; then
        rm -f "$d/ovn-controller.pid"
        in_ns "$n" ovn-controller "$(db "$n")" --pidfile="$d/ovn-controller.pid" \
            --log-file="$l/ovn-controller.log" --detach 9>&- 2>>"$l/start.log" ||
            fail "$name" "ovn-controller did not start" "$l/ovn-controller.log"
        say "$name" "ovn-controller started"
    fi
    wait_for "$WAIT" chassis_ready "$n" ||
        fail "$name" "no chassis $name in the SB after ${WAIT}s" "$l/ovn-controller.log"
    say "$name" "ready (tunnel endpoint $(ip_of "$n"), chassis $name)"
}

stop_pidfile() {
    local pidfile=$1 comm=$2 pid
    pid=$(alive_pid "$pidfile" "$comm") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
}

# Teardown is best effort and idempotent; each step treats "already gone" as done.
down_one() {
    local n=$1 d name ctl
    d=$(dir "$n")
    name=$(ns "$n")
    # 1. ovn-controller, asked to exit so that it removes its Chassis row from the SB.
    if controller_running "$n" && ctl=$(controller_ctl "$n"); then
        ovn-appctl -T 10 -t "$ctl" exit >/dev/null 2>&1 || true
    fi
    stop_pidfile "$d/ovn-controller.pid" ovn-controller
    # 2. A Chassis row left behind (controller killed) would keep tunnels to nowhere.
    if [[ -n $(ovn-sbctl --timeout=5 --db="$SB_DB" --bare --columns=_uuid find Chassis "name=\"$name\"" 2>/dev/null) ]]; then
        ovn-sbctl --timeout=5 --db="$SB_DB" chassis-del "$name" || true
    fi
    # 3. ovs-vswitchd, then ovsdb-server.
    stop_pidfile "$d/ovs-vswitchd.pid" ovs-vswitchd
    stop_pidfile "$d/ovsdb-server.pid" ovsdb-server
    # 4. The wire and its port on the main br-phy.
    ovs-vsctl --timeout=5 --if-exists del-port "$PHY" "kch$n-main" 2>/dev/null || true
    ip link del "kch$n-main" 2>/dev/null || true
    # 5. The namespace (its veth end and tap devices go with it) and the files.
    [[ -e /var/run/netns/$name ]] && ip netns delete "$name"
    rm -rf "$d"
    say "$name" removed
}

# ---------------------------------------------------------------------------------------

cmd_up() {
    need_root
    check_count
    take_lock
    command -v "$KURYR" >/dev/null || fail chassis "no kuryr binary ($KURYR): set KURYR=path/to/kuryr or run \`make lab-chassis\`"
    main_ok
    up_main
    local n
    for ((n = 1; n <= COUNT; n++)); do
        up_one "$n"
    done
    # Forget tunnel neighbours learned from chassis of an earlier run (their MACs may be
    # stale); the main vswitchd learns them again from the next ARP.
    ovs-appctl -T 5 tnl/neigh/flush >/dev/null 2>&1 || true
}

cmd_down() {
    need_root
    take_lock
    local d n
    # Every chassis there is, whatever LAB_CHASSIS says now.
    for d in "$STATE_DIR"/chassis-[1-9]; do
        [[ -d $d ]] || continue
        n=${d##*-}
        down_one "$n"
    done
    for n in 1 2 3 4 5 6 7 8 9; do
        [[ -e /var/run/netns/$(ns "$n") ]] && down_one "$n"
    done
    down_main
}

cmd_status() {
    need_root
    check_count
    local n rc=0 name
    if ovs-vsctl --timeout=5 br-exists "$PHY" 2>/dev/null && ip -4 addr show dev "$PHY" | grep -qF " $MAIN_IP/24 "; then
        say "main $PHY" "present ($MAIN_IP), ovn-encap-ip $(ext_get ovn-encap-ip), encap $(ext_get ovn-encap-type)"
    else
        say "main $PHY" absent
        rc=1
    fi
    for ((n = 1; n <= COUNT; n++)); do
        name=$(ns "$n")
        if [[ ! -e /var/run/netns/$name ]]; then
            say "$name" absent
            rc=1
        elif ! ovsdb_running "$n" || ! vswitchd_running "$n" || ! controller_running "$n"; then
            say "$name" "namespace present, a daemon is not running"
            rc=1
        elif ! chassis_ready "$n"; then
            say "$name" "not registered in the SB"
            rc=1
        else
            say "$name" "ready (tunnel endpoint $(ip_of "$n"), encap $(vsctl "$n" get Open_vSwitch . external_ids:ovn-encap-type | tr -d '"'))"
        fi
    done
    return "$rc"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
