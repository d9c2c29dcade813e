#!/usr/bin/env bash
# A clustered OVN control plane on this machine, for failover tests of kuryr's OVN mode.
#
#   lab/cluster.sh up              bring it up (idempotent; needs `make lab` first)
#   lab/cluster.sh down            stop and remove everything `up` made
#   lab/cluster.sh status          one line per part; exit 1 if any part is down
#   lab/cluster.sh start nb|sb N   start member N of one cluster if it is not running (after a
#                                  test killed it), without touching the others
#
# What runs:
#   - OVN Northbound and Southbound, each a 3-member Raft cluster (ovsdb-server in clustered
#     mode, databases made with `ovsdb-tool create-cluster` / `join-cluster` from
#     /usr/share/ovn/). Member N of NB answers on tcp:127.0.0.1:1661N and on the unix socket
#     /run/kuryr-lab/cluster/nbN.sock and speaks Raft on tcp:127.0.0.1:1663N; SB: 1662N,
#     sbN.sock and 1664N. The unix sockets are for the chassis: it has a network namespace
#     of its own, where 127.0.0.1 is not the main host's, but /run/kuryr-lab is shared.
#   - ovn-northd, pointed at all three members of each (tcp remotes).
#   - a chassis with a Docker engine: lab node LAB_CLUSTER_NODE (default 9) made by
#     `lab/node.sh add` (its own dockerd, OVS and ovn-controller, chassis kuryr-node-9),
#     whose ovn-controller uses the SB cluster's three unix sockets. No kuryr plugin: tests
#     start their own kuryr daemon there (`lab/node.sh exec 9 -- kuryr daemon --nb ...`).
#
# Nothing of the main lab is touched (its NB/SB sockets, ovn-northd, OVS, dockerd) nor the
# other nodes. State (database files, sockets, pid files, *.ctl) in /run/kuryr-lab/cluster,
# logs in /var/log/kuryr-lab/cluster. /run/kuryr-lab/cluster/env lists the remotes for
# tests (NB_TCP, NB_UNIX, SB_TCP, SB_UNIX, NODE).
#
# Knobs: LAB_CLUSTER_NODE (the node number, 1 to 9, default 9), LAB_WAIT (seconds to wait for
# a daemon, default 60), KURYR (the kuryr binary for the node's `kuryr host init`).
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

REPO=$(dirname "$(dirname "$(realpath "${BASH_SOURCE[0]}")")")
readonly REPO
readonly NODE_SH=$REPO/lab/node.sh
readonly OWNER=lab/cluster.sh
readonly STATE=/run/kuryr-lab/cluster
readonly LOGS=/var/log/kuryr-lab/cluster
readonly LOCK=/run/kuryr-lab/cluster.lock
readonly MEMBERS="1 2 3"

NODE=${LAB_CLUSTER_NODE:-9}
WAIT=${LAB_WAIT:-60}

schema() { case $1 in nb) echo /usr/share/ovn/ovn-nb.ovsschema ;; sb) echo /usr/share/ovn/ovn-sb.ovsschema ;; esac; }
dbname() { case $1 in nb) echo OVN_Northbound ;; sb) echo OVN_Southbound ;; esac; }
client_port() { case $1 in nb) echo "1661$2" ;; sb) echo "1662$2" ;; esac; }
raft_port() { case $1 in nb) echo "1663$2" ;; sb) echo "1664$2" ;; esac; }
db_file() { echo "$STATE/$1$2.db"; }
sock() { echo "$STATE/$1$2.sock"; }
ctl() { echo "$STATE/$1$2.ctl"; }
pidfile() { echo "$STATE/$1$2.pid"; }
raft_addr() { echo "tcp:127.0.0.1:$(raft_port "$1" "$2")"; }
# All three members' client remotes, comma-separated: tcp (the main host) or unix (the node).
tcp_remotes() { local m out=(); for m in $MEMBERS; do out+=("tcp:127.0.0.1:$(client_port "$1" "$m")"); done; (IFS=,; echo "${out[*]}"); }
unix_remotes() { local m out=(); for m in $MEMBERS; do out+=("unix:$(sock "$1" "$m")"); done; (IFS=,; echo "${out[*]}"); }

check_node() {
    [[ $NODE =~ ^[1-9]$ ]] || fail cluster "LAB_CLUSTER_NODE=$NODE: give a number from 1 to 9"
}

# A killed daemon stays a zombie for a moment here (see lab/node.sh).
is_zombie() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
live_pid() {
    local pid
    pid=$(alive_pid "$@") && ! is_zombie "$pid" && echo "$pid"
}
member_pid() { live_pid "$(pidfile "$1" "$2")" ovsdb-server; }
member_status() { ovs-appctl -T 5 -t "$(ctl "$1" "$2")" cluster/status "$(dbname "$1")" 2>/dev/null; }
# A member that runs and has joined its cluster (a joining one says "joining cluster").
member_ok() { member_pid "$1" "$2" >/dev/null && member_status "$1" "$2" | grep -q '^Status: cluster member'; }
member_role() { member_status "$1" "$2" | sed -n 's/^Role: //p'; }
has_leader() {
    local m
    for m in $MEMBERS; do
        [[ $(member_role "$1" "$m") == leader ]] && return 0
    done
    return 1
}
cluster_ok() {
    local m
    for m in $MEMBERS; do member_ok "$1" "$m" || return 1; done
    has_leader "$1"
}
northd_pid() { live_pid "$STATE/ovn-northd.pid" ovn-northd; }
northd_ok() {
    northd_pid >/dev/null &&
        [[ $(ovn-appctl -T 5 -t "$STATE/ovn-northd.ctl" status 2>/dev/null) == "Status: active" ]]
}

# port_owner PORT: the command holding a listening socket on PORT (empty when free).
port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*"' | head -n 1 | cut -d'"' -f2 || true; }

# start_member DB N: member N of DB's cluster, its database file made if missing.
start_member() {
    local db=$1 m=$2 file port owner
    file=$(db_file "$db" "$m")
    member_pid "$db" "$m" >/dev/null && return 0
    for port in "$(client_port "$db" "$m")" "$(raft_port "$db" "$m")"; do
        owner=$(port_owner "$port")
        [[ -z $owner ]] ||
            fail "$db$m" "port $port is already taken by $owner (not a member of this cluster): stop it, or it would answer in the member's place"
    done
    if [[ ! -f $file ]]; then
        if [[ $m == 1 ]]; then
            ovsdb-tool create-cluster "$file" "$(schema "$db")" "$(raft_addr "$db" 1)" 2>>"$LOGS/ovsdb-tool.log" ||
                fail "$db$m" "ovsdb-tool create-cluster failed" "$LOGS/ovsdb-tool.log"
        else
            ovsdb-tool join-cluster "$file" "$(dbname "$db")" "$(raft_addr "$db" "$m")" "$(raft_addr "$db" 1)" \
                2>>"$LOGS/ovsdb-tool.log" || fail "$db$m" "ovsdb-tool join-cluster failed" "$LOGS/ovsdb-tool.log"
        fi
    fi
    rm -f "$(sock "$db" "$m")" "$(pidfile "$db" "$m")"
    # setsid and no inherited descriptors: it must outlive this script and hold no lock.
    spawn setsid ovsdb-server "$file" --remote="punix:$(sock "$db" "$m")" \
        --remote="ptcp:$(client_port "$db" "$m"):127.0.0.1" --pidfile="$(pidfile "$db" "$m")" \
        --unixctl="$(ctl "$db" "$m")" --log-file="$LOGS/$db$m.log" --no-chdir --detach \
        </dev/null >>"$LOGS/start.log" 2>&1 || fail "$db$m" "ovsdb-server did not start" "$LOGS/start.log" "$LOGS/$db$m.log"
    say "$db$m" "ovsdb-server started ($(dbname "$db") member $m: tcp:127.0.0.1:$(client_port "$db" "$m"), unix:$(sock "$db" "$m"), raft $(raft_addr "$db" "$m"))"
}

up_cluster() {
    local db=$1 m
    # Member 1 first: the others join through it.
    for m in $MEMBERS; do start_member "$db" "$m"; done
    wait_for "$WAIT" cluster_ok "$db" ||
        fail "$db" "the $(dbname "$db") cluster has no leader or a member has not joined after ${WAIT}s" \
            "$LOGS/${db}1.log" "$LOGS/${db}2.log" "$LOGS/${db}3.log"
}

up_northd() {
    northd_ok && return 0
    local pid
    if pid=$(northd_pid); then
        kill "$pid" 2>/dev/null || true
        wait_for 10 eval '! northd_pid >/dev/null' || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/ovn-northd.pid"
    OVN_RUNDIR=$STATE spawn setsid ovn-northd --ovnnb-db="$(tcp_remotes nb)" --ovnsb-db="$(tcp_remotes sb)" \
        --pidfile="$STATE/ovn-northd.pid" --unixctl="$STATE/ovn-northd.ctl" \
        --log-file="$LOGS/ovn-northd.log" --no-chdir --detach </dev/null >>"$LOGS/start.log" 2>&1 ||
        fail ovn-northd "did not start" "$LOGS/start.log" "$LOGS/ovn-northd.log"
    wait_for "$WAIT" northd_ok || fail ovn-northd "not active after ${WAIT}s" "$LOGS/ovn-northd.log"
    say ovn-northd "started (NB $(tcp_remotes nb), SB $(tcp_remotes sb))"
}

node_owned() { [[ $(cat "/run/kuryr-lab/node-$NODE/owner" 2>/dev/null) == "$OWNER" ]]; }
chassis_ok() {
    [[ -n $(ovn-sbctl --timeout=5 --db="$(tcp_remotes sb)" --bare --columns=_uuid find Chassis \
        "name=\"kuryr-node-$NODE\"" 2>/dev/null) ]]
}

cmd_up() {
    need_root
    check_node
    mkdir -p "$STATE" "$LOGS"
    lock_or_fail "$LOCK" 600 cluster
    local db
    for db in nb sb; do
        [[ -f $(schema "$db") ]] || fail cluster "$(schema "$db") is missing: run \`make lab\` (package ovn-central)"
    done
    if [[ -e /var/run/netns/kuryr-node-$NODE ]] && ! node_owned; then
        fail "kuryr-node-$NODE" "node $NODE is already there and is not lab/cluster.sh's: \`lab/node.sh down\` or LAB_CLUSTER_NODE=another number"
    fi
    up_cluster nb
    up_cluster sb
    # NB_Global and SB_Global (ovn-northd would make them too); nothing when they exist.
    ovn-nbctl --timeout=10 --db="$(tcp_remotes nb)" --no-wait init
    ovn-sbctl --timeout=10 --db="$(tcp_remotes sb)" init
    say cluster "NB $(tcp_remotes nb) and SB $(tcp_remotes sb) have a leader and three members each"
    up_northd
    LAB_NODE_OWNER=$OWNER LAB_NODE_SB=$(unix_remotes sb) LAB_NODE_NB=$(unix_remotes nb) \
        "$NODE_SH" add "$NODE" 9>&- | sed "s/^/node.sh: /" || fail "kuryr-node-$NODE" "lab/node.sh add $NODE failed (above)"
    chassis_ok || fail "kuryr-node-$NODE" "its chassis is not in the cluster's SB" "/var/log/kuryr-lab/node-$NODE/ovn-controller.log"
    {
        echo "NB_TCP=$(tcp_remotes nb)"
        echo "NB_UNIX=$(unix_remotes nb)"
        echo "SB_TCP=$(tcp_remotes sb)"
        echo "SB_UNIX=$(unix_remotes sb)"
        echo "NODE=$NODE"
    } >"$STATE/env"
    say cluster "ready: chassis kuryr-node-$NODE (\`lab/node.sh exec $NODE -- CMD\`), NB for it $(unix_remotes nb)"
}

cmd_start() {
    need_root
    local db=${1:-} m=${2:-}
    [[ $db =~ ^(nb|sb)$ && $m =~ ^[123]$ ]] || {
        echo "usage: $0 start nb|sb N (N = 1, 2 or 3)" >&2
        exit 2
    }
    [[ -f $(db_file "$db" "$m") ]] || fail "$db$m" "no database file $(db_file "$db" "$m"): run \`lab/cluster.sh up\`"
    start_member "$db" "$m"
}

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 eval "! kill -0 $pid 2>/dev/null || is_zombie $pid" || kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
    need_root
    check_node
    mkdir -p "$LOGS"
    lock_or_fail "$LOCK" 600 cluster
    local db m pid
    # The chassis first, while the SB answers (its ovn-controller removes its Chassis row).
    if node_owned; then
        "$NODE_SH" remove "$NODE" 9>&- | sed "s/^/node.sh: /" || fail "kuryr-node-$NODE" "lab/node.sh remove $NODE failed (above)"
    elif [[ -e /var/run/netns/kuryr-node-$NODE ]]; then
        say "kuryr-node-$NODE" "left alone: not lab/cluster.sh's"
    fi
    if pid=$(northd_pid); then
        stop_pid "$pid"
        say ovn-northd stopped
    fi
    for db in nb sb; do
        for m in $MEMBERS; do
            if pid=$(member_pid "$db" "$m"); then
                stop_pid "$pid"
                say "$db$m" stopped
            fi
        done
    done
    rm -rf "$STATE"
    say cluster "removed ($STATE; logs kept in $LOGS)"
}

cmd_status() {
    need_root
    check_node
    local db m rc=0 pid role
    for db in nb sb; do
        for m in $MEMBERS; do
            if ! pid=$(member_pid "$db" "$m"); then
                say "$db$m" "not running ($(dbname "$db") member $m, $(db_file "$db" "$m"))"
                rc=1
            elif ! member_ok "$db" "$m"; then
                say "$db$m" "running (pid $pid), not a cluster member yet: $(member_status "$db" "$m" | sed -n 's/^Status: //p')"
                rc=1
            else
                role=$(member_role "$db" "$m")
                say "$db$m" "$role (pid $pid, tcp:127.0.0.1:$(client_port "$db" "$m"), unix:$(sock "$db" "$m"))"
            fi
        done
        if ! has_leader "$db"; then
            say "$db" "no leader"
            rc=1
        fi
    done
    if northd_ok; then
        say ovn-northd "active (pid $(northd_pid))"
    else
        say ovn-northd "not running or not active"
        rc=1
    fi
    if ! node_owned; then
        say "kuryr-node-$NODE" "absent (or not lab/cluster.sh's)"
        return 1
    fi
    "$NODE_SH" status "$NODE" | sed "s/^/node.sh: /" || rc=1
    if chassis_ok; then
        say chassis "kuryr-node-$NODE in the cluster's SB"
    else
        say chassis "kuryr-node-$NODE not in the cluster's SB"
        rc=1
    fi
    return "$rc"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    start)
        shift
        cmd_start "$@"
        ;;
    *)
        echo "usage: $0 up|down|status|start nb|sb N" >&2
        exit 2
        ;;
esac
