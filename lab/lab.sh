#!/usr/bin/env bash
# The lab: the real stack the integration tests talk to, on one Debian 12 host.
#
#   lab/lab.sh up      install what is missing, start what is not running (idempotent)
#   lab/lab.sh down    stop only what `up` started, newest first
#   lab/lab.sh status  one line per component; exit 1 if any is not running
#   lab/lab.sh restart NAME
#                      restart one daemon `up` started (NAME as `status` prints it):
#                      dockerd is stopped with SIGTERM, as an upgrade does, the others
#                      are killed (SIGKILL), as a crash does; then `up` starts it again
#
# Components: dockerd, ovsdb-server + ovs-vswitchd with the integration bridge br-int
# (userspace datapath: the kernels we run on have no openvswitch module), the OVN
# Northbound and Southbound databases, ovn-northd, ovn-controller (this host's chassis)
# and the test image kuryr-busybox:latest.
#
# No systemd on these machines, so daemons are started by hand. `up` must work on a
# fresh machine, on one where everything already runs (then it changes nothing), and on
# one whose daemons were killed but whose disk still has the old databases, Docker state,
# pid files and sockets. Environment knobs: LAB_SYSTEM_ID (default: hostname),
# LAB_ENCAP_IP (default 127.0.0.1, only used if none is set yet), LAB_WAIT (seconds to
# wait for a daemon to answer, default 60), LAB_LIVE_RESTORE (default yes; no: dockerd
# starts without --live-restore, so the next stop stops its containers).
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# `su` without `-` and some CI runners drop the sbin directories, where dockerd,
# ovsdb-server and ovs-vswitchd live.
PATH=$PATH:/usr/sbin:/sbin

readonly STATE_DIR=/run/kuryr-lab
# Names of the daemons `up` started itself, one per line: `down` stops exactly these.
readonly STATE_FILE=$STATE_DIR/started
readonly LOG_DIR=/var/log/kuryr-lab

# /usr/local/bin/docker on these machines is a newer client only; Debian's matches dockerd.
readonly DOCKER=/usr/bin/docker
readonly DOCKERD=/usr/sbin/dockerd
readonly DOCKERD_PIDFILE=/var/run/docker.pid
readonly CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid
readonly OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
readonly OVN_CTL=/usr/share/ovn/scripts/ovn-ctl
readonly OVS_RUNDIR=/var/run/openvswitch
readonly OVN_RUNDIR=/var/run/ovn
readonly NB_DB=unix:$OVN_RUNDIR/ovnnb_db.sock
readonly SB_DB=unix:$OVN_RUNDIR/ovnsb_db.sock
readonly BRIDGE=br-int
readonly IMAGE=kuryr-busybox:latest

SYSTEM_ID=${LAB_SYSTEM_ID:-$(hostname)}
ENCAP_IP=${LAB_ENCAP_IP:-127.0.0.1}
WAIT=${LAB_WAIT:-60}

# What the lab and the tests need. gcc/libc6-dev/libssl-dev/pkg-config build the
# workspace (openssl-sys); iputils-ping and iproute2 are used by the tests on the host,
# curl by the demo to ask the plugin socket whether a kuryr daemon answers; systemd for
# systemd-analyze, which checks the unit files `make install` ships.
readonly PACKAGES=(
    docker.io iptables
    openvswitch-switch ovn-central ovn-host
    busybox-static iproute2 iputils-ping procps curl socat
    gcc libc6-dev libssl-dev pkg-config systemd
)

# Applets linked into the test image. The first line is what tests rely on; the rest
# is cheap and helps when debugging inside a container (udhcpc: OVN native DHCP).
readonly APPLETS=(
    sh ip ping ping6 nc httpd sleep cat echo ls wget ifconfig route arp hostname true
    false seq timeout
    udhcpc arping traceroute nslookup netstat grep sed awk head tail cut tr wc sort
    printf test '[' env id ps kill mkdir rm touch date uname sysctl
)

# Daemons in start order; `down` walks it backwards.
readonly DAEMONS=(dockerd ovsdb-server ovs-vswitchd ovn-nb ovn-sb ovn-northd ovn-controller)

# ---------------------------------------------------------------------------------------
# Helpers





pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# clear_stale_pidfile PIDFILE COMM: remove a pid file whose process is gone or is now
# something else. Needed before starting a daemon: dockerd refuses to start on a pid file
# naming any live process, and ovn-ctl's own name check does not work (it then believes
# a reused pid is its ovsdb-server and starts nothing).
clear_stale_pidfile() {
    if [[ -e $1 ]] && ! pidfile_alive "$1" "$2"; then
        rm -f "$1"
    fi
}


# is_running NAME: the daemon answers on its socket (not merely: a pid file exists).
is_running() {
    case $1 in
        dockerd) timeout 20 "$DOCKER" info --format '{{.ID}}' >/dev/null 2>&1 ;;
        ovsdb-server) ovs-vsctl --timeout=5 show >/dev/null 2>&1 ;;
        ovs-vswitchd) ovs-appctl -T 5 -t ovs-vswitchd version >/dev/null 2>&1 ;;
        ovn-nb) ovn-nbctl --timeout=5 --db="$NB_DB" show >/dev/null 2>&1 ;;
        ovn-sb) ovn-sbctl --timeout=5 --db="$SB_DB" show >/dev/null 2>&1 ;;
        ovn-northd) ovn-appctl -T 5 -t ovn-northd status >/dev/null 2>&1 ;;
        ovn-controller) ovn-appctl -T 5 -t ovn-controller version >/dev/null 2>&1 ;;
        *) return 2 ;;
    esac
}

# record_starting NAME WAS_RUNNING: note a daemon before starting it, so that one `up`
# failing half way still leaves `down` able to stop what it started.
record_starting() { [[ $2 == yes ]] || record "$1"; }

# is_alive NAME: the daemon's pid file names a live process of the right name, whether
# or not it answers. What `down` stops and what the state file keeps track of.
is_alive() {
    case $1 in
        dockerd) pidfile_alive "$DOCKERD_PIDFILE" dockerd ;;
        ovsdb-server) pidfile_alive "$OVS_RUNDIR/ovsdb-server.pid" ovsdb-server ;;
        ovs-vswitchd) pidfile_alive "$OVS_RUNDIR/ovs-vswitchd.pid" ovs-vswitchd ;;
        ovn-nb) pidfile_alive "$OVN_RUNDIR/ovnnb_db.pid" ovsdb-server ;;
        ovn-sb) pidfile_alive "$OVN_RUNDIR/ovnsb_db.pid" ovsdb-server ;;
        ovn-northd) pidfile_alive "$OVN_RUNDIR/ovn-northd.pid" ovn-northd ;;
        ovn-controller) pidfile_alive "$OVN_RUNDIR/ovn-controller.pid" ovn-controller ;;
        *) return 2 ;;
    esac
}

# report NAME WAS_RUNNING: the one line per component.
report_start() {
    if [[ $2 == yes ]]; then
        say "$1" "already running"
    else
        say "$1" started
    fi
}



# Serialize concurrent `make lab` runs: two ovs-ctl starts racing each other is how a
# lab ends up with two ovsdb-servers fighting over one database file.
take_lock() {
    mkdir -p "$STATE_DIR" "$LOG_DIR"
    lock_or_fail "$STATE_DIR/lock" 600 lab
}

# ---------------------------------------------------------------------------------------
# up

install_packages() {
    local pkg missing=()
    for pkg in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        say packages "already installed"
        return
    fi
    say packages "installing ${missing[*]}"
    local log=$LOG_DIR/apt.log
    # Package scripts would start dockerd/OVS through init.d; a policy-rc.d that says
    # "no" keeps them from it, so that every daemon is started (and recorded) here.
    local policy=/usr/sbin/policy-rc.d own_policy=no
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=yes
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    } >>"$log" 2>&1 || rc=$?
    [[ $own_policy == yes ]] && rm -f "$policy"
    ((rc == 0)) || fail packages "apt-get could not install ${missing[*]}" "$log"
    say packages "installed ${missing[*]}"
}

# A state file on a disk that survived a reboot (or daemons that were killed) lists
# daemons that are gone; forget them so that `down` never stops a stranger.
prune_state() {
    local name names
    [[ -f $STATE_FILE ]] || return 0
    mapfile -t names <"$STATE_FILE"
    for name in "${names[@]}"; do
        is_alive "$name" || forget "$name"
    done
}

up_dockerd() {
    local log=$LOG_DIR/dockerd.log
    if is_running dockerd; then
        report_start dockerd yes
        return
    fi
    if pidfile_alive "$DOCKERD_PIDFILE" dockerd; then
        # Someone's dockerd is alive but not answering yet (still starting, or busy
        # restoring containers): wait for it rather than start a second one.
        wait_for "$WAIT" is_running dockerd ||
            fail dockerd "dockerd (pid $(cat "$DOCKERD_PIDFILE")) is alive but does not answer" "$log"
        report_start dockerd yes
        return
    fi
    clear_stale_pidfile "$DOCKERD_PIDFILE" dockerd
    # The containerd dockerd runs for itself: a live one left by a killed dockerd is
    # adopted (fine), but a stale pid that now names another process makes dockerd
    # wait for it for 15 s and give up.
    clear_stale_pidfile "$CONTAINERD_PIDFILE" containerd
    record_starting dockerd no
    echo "=== $(date -Is) lab.sh up: starting dockerd" >>"$log"
    # setsid: its own session, so that ^C on `make lab` does not take dockerd down.
    # A plain command, not `spawn`: backgrounding a function would leave a bash
    # holding the lock behind as dockerd's parent.
    # --live-restore: containers keep running, with their addresses and connectivity,
    # while dockerd restarts (what production hosts run, and what the tests check).
    local args=(--live-restore)
    [[ ${LAB_LIVE_RESTORE:-yes} == no ]] && args=()
    setsid "$DOCKERD" "${args[@]}" </dev/null >>"$log" 2>&1 9>&- &
    local pid=$! deadline=$((SECONDS + WAIT))
    until is_running dockerd; do
        kill -0 "$pid" 2>/dev/null || fail dockerd "dockerd exited while starting" "$log"
        ((SECONDS < deadline)) || fail dockerd "dockerd did not answer within ${WAIT}s" "$log"
        sleep 0.2
    done
    report_start dockerd no
}

up_openvswitch() {
    local db=no vswitchd=no log=$LOG_DIR/ovs-ctl.log
    is_running ovsdb-server && db=yes
    is_running ovs-vswitchd && vswitchd=yes
    if [[ $db == no || $vswitchd == no ]]; then
        # ovs-ctl skips the daemon that already runs. Its warnings about modprobe and
        # ulimit are expected here: no kernel module, datapath_type=netdev everywhere.
        clear_stale_pidfile "$OVS_RUNDIR/ovsdb-server.pid" ovsdb-server
        clear_stale_pidfile "$OVS_RUNDIR/ovs-vswitchd.pid" ovs-vswitchd
        record_starting ovsdb-server "$db"
        record_starting ovs-vswitchd "$vswitchd"
        echo "=== $(date -Is) lab.sh up: ovs-ctl start" >>"$log"
        spawn "$OVS_CTL" start --system-id="$SYSTEM_ID" >>"$log" 2>&1 || true
        wait_for "$WAIT" is_running ovsdb-server ||
            fail ovsdb-server "does not answer on $OVS_RUNDIR/db.sock" "$log" /var/log/openvswitch/ovsdb-server.log
        wait_for "$WAIT" is_running ovs-vswitchd ||
            fail ovs-vswitchd "does not answer" "$log" /var/log/openvswitch/ovs-vswitchd.log
    fi
    report_start ovsdb-server "$db"
    report_start ovs-vswitchd "$vswitchd"
}

# The integration bridge kuryr plugs containers into. Only what is missing or wrong is
# written, so a second run leaves the database untouched.
up_bridge() {
    local changes=() dp fm inband
    if ! ovs-vsctl --timeout=5 br-exists "$BRIDGE"; then
        ovs-vsctl --timeout=5 --may-exist add-br "$BRIDGE" -- \
            set Bridge "$BRIDGE" datapath_type=netdev fail_mode=secure \
            other_config:disable-in-band=true ||
            fail "$BRIDGE" "could not create the bridge" /var/log/openvswitch/ovs-vswitchd.log
        say "$BRIDGE" created
        return
    fi
    dp=$(ovs-vsctl --timeout=5 get Bridge "$BRIDGE" datapath_type)
    fm=$(ovs-vsctl --timeout=5 get Bridge "$BRIDGE" fail_mode)
    inband=$(ovs-vsctl --timeout=5 --if-exists get Bridge "$BRIDGE" other_config:disable-in-band)
    [[ $dp == netdev ]] || changes+=(datapath_type=netdev)
    [[ $fm == secure ]] || changes+=(fail_mode=secure)
    [[ $inband == '"true"' || $inband == true ]] || changes+=(other_config:disable-in-band=true)
    if ((${#changes[@]} == 0)); then
        say "$BRIDGE" "already configured"
        return
    fi
    ovs-vsctl --timeout=5 set Bridge "$BRIDGE" "${changes[@]}" ||
        fail "$BRIDGE" "could not set ${changes[*]}" /var/log/openvswitch/ovs-vswitchd.log
    say "$BRIDGE" "set ${changes[*]}"
}

up_ovn_central() {
    local nb=no sb=no northd=no log=$LOG_DIR/ovn-ctl.log
    is_running ovn-nb && nb=yes
    is_running ovn-sb && sb=yes
    is_running ovn-northd && northd=yes
    if [[ $nb == no || $sb == no || $northd == no ]]; then
        # start_northd starts the NB and SB ovsdb-servers first and skips what runs.
        clear_stale_pidfile "$OVN_RUNDIR/ovnnb_db.pid" ovsdb-server
        clear_stale_pidfile "$OVN_RUNDIR/ovnsb_db.pid" ovsdb-server
        clear_stale_pidfile "$OVN_RUNDIR/ovn-northd.pid" ovn-northd
        record_starting ovn-nb "$nb"
        record_starting ovn-sb "$sb"
        record_starting ovn-northd "$northd"
        echo "=== $(date -Is) lab.sh up: ovn-ctl start_northd" >>"$log"
        spawn "$OVN_CTL" start_northd >>"$log" 2>&1 || true
        wait_for "$WAIT" is_running ovn-nb ||
            fail ovn-nb "does not answer on $NB_DB" "$log" /var/log/ovn/ovsdb-server-nb.log
        wait_for "$WAIT" is_running ovn-sb ||
            fail ovn-sb "does not answer on $SB_DB" "$log" /var/log/ovn/ovsdb-server-sb.log
        wait_for "$WAIT" is_running ovn-northd ||
            fail ovn-northd "does not answer" "$log" /var/log/ovn/ovn-northd.log
    fi
    report_start ovn-nb "$nb"
    report_start ovn-sb "$sb"
    report_start ovn-northd "$northd"
}

# Tell ovn-controller where the SB is and how to reach this chassis. ovn-encap-ip is
# kept if set (a multi-host setup chooses its own); the rest is what the lab needs.
configure_chassis() {
    local key want have changes=()
    local -A wanted=(
        [ovn-remote]=$SB_DB
        [ovn-encap-type]=geneve
        [ovn-bridge]=$BRIDGE
        [ovn-bridge-datapath-type]=netdev
    )
    for key in ovn-remote ovn-encap-type ovn-bridge ovn-bridge-datapath-type; do
        want=${wanted[$key]}
        have=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . "external_ids:$key")
        [[ $have == "\"$want\"" || $have == "$want" ]] || changes+=("external_ids:$key=\"$want\"")
    done
    have=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . external_ids:ovn-encap-ip)
    [[ -n $have ]] || changes+=("external_ids:ovn-encap-ip=\"$ENCAP_IP\"")
    if ((${#changes[@]} == 0)); then
        say chassis-config "already set"
        return
    fi
    ovs-vsctl --timeout=5 set Open_vSwitch . "${changes[@]}" ||
        fail chassis-config "could not set ${changes[*]}"
    say chassis-config "set ${changes[*]//\"/}"
}

# chassis_ready: ovn-controller talks to the SB and its Chassis row is there. The row
# alone proves nothing after a kill: the SB on disk still has the old one.
chassis_ready() {
    local id
    id=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . external_ids:system-id) &&
        id=${id//\"/} && [[ -n $id ]] &&
        [[ $(ovn-appctl -T 5 -t ovn-controller connection-status 2>/dev/null) == connected ]] &&
        [[ -n $(ovn-sbctl --timeout=5 --db="$SB_DB" --bare --columns=_uuid find Chassis "name=\"$id\"") ]]
}

up_ovn_controller() {
    local was=no log=$LOG_DIR/ovn-ctl.log
    is_running ovn-controller && was=yes
    if [[ $was == no ]]; then
        clear_stale_pidfile "$OVN_RUNDIR/ovn-controller.pid" ovn-controller
        record_starting ovn-controller no
        echo "=== $(date -Is) lab.sh up: ovn-ctl start_controller" >>"$log"
        spawn "$OVN_CTL" start_controller >>"$log" 2>&1 || true
        wait_for "$WAIT" is_running ovn-controller ||
            fail ovn-controller "does not answer" "$log" /var/log/ovn/ovn-controller.log
    fi
    wait_for "$WAIT" chassis_ready ||
        fail ovn-controller "no chassis for this host in the SB after ${WAIT}s" /var/log/ovn/ovn-controller.log
    report_start ovn-controller "$was"
}

up_directories() {
    # Docker finds plugins in /run/docker/plugins; kuryr reads /etc/kuryr/kuryr.conf.
    mkdir -p /run/docker/plugins /etc/kuryr
}

# The image's identity: busybox's version and the applet list. A change rebuilds it.
image_fingerprint() {
    { busybox 2>&1 | head -n 1; printf '%s\n' "${APPLETS[@]}"; } | sha256sum | cut -c1-16
}

up_image() {
    local log=$LOG_DIR/image.log fingerprint have
    fingerprint=$(image_fingerprint)
    have=$("$DOCKER" image inspect --format '{{index .Config.Labels "kuryr.lab.fingerprint"}}' \
        "$IMAGE" 2>/dev/null || true)
    if [[ $have == "$fingerprint" ]]; then
        say "$IMAGE" "already present"
        return
    fi
    build_image "$fingerprint" "$log"
    timeout 120 "$DOCKER" run --rm --net none "$IMAGE" sh -c true >>"$log" 2>&1 ||
        fail "$IMAGE" "a container from the new image does not run" "$log" "$LOG_DIR/dockerd.log"
    say "$IMAGE" "${have:+re}built"
}

# No image registry here: the image is busybox-static and its applet links, imported.
build_image() {
    local fingerprint=$1 log=$2 dir applet
    local available
    available=$(busybox --list)
    dir=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $dir is local
    trap "rm -rf '$dir'" RETURN
    mkdir -p "$dir"/{bin,etc,proc,sys,dev,root,var/www} "$dir/tmp"
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    for applet in "${APPLETS[@]}"; do
        grep -qxF -- "$applet" <<<"$available" ||
            fail "$IMAGE" "busybox-static has no applet '$applet' (busybox --list)"
        ln -s busybox "$dir/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
    echo 'root:x:0:' >"$dir/etc/group"
    echo "=== $(date -Is) lab.sh up: building $IMAGE" >>"$log"
    tar -C "$dir" -c . | "$DOCKER" import \
        --change 'ENV PATH=/bin' \
        --change 'CMD ["sh"]' \
        --change "LABEL kuryr.lab.fingerprint=$fingerprint" \
        - "$IMAGE" >>"$log" 2>&1 ||
        fail "$IMAGE" "docker import failed" "$log"
}

cmd_up() {
    need_root
    take_lock
    up_all
}

up_all() {
    install_packages
    prune_state
    up_dockerd
    up_openvswitch
    up_bridge
    up_ovn_central
    configure_chassis
    up_ovn_controller
    up_directories
    up_image
}

# ---------------------------------------------------------------------------------------
# down

stop_dockerd() {
    local pid
    pid=$(alive_pid "$DOCKERD_PIDFILE" dockerd) || return 0
    kill -TERM "$pid"
    # dockerd stops its containers first (10 s grace each), so give it time.
    wait_for "$WAIT" pid_gone "$pid" ||
        fail dockerd "pid $pid still alive ${WAIT}s after SIGTERM" "$LOG_DIR/dockerd.log"
}

stop_daemon() {
    local log
    case $1 in
        dockerd) stop_dockerd ;;
        ovs-vswitchd) log=$LOG_DIR/ovs-ctl.log && "$OVS_CTL" stop --no-ovsdb-server >>"$log" 2>&1 ;;
        ovsdb-server) log=$LOG_DIR/ovs-ctl.log && "$OVS_CTL" stop --no-ovs-vswitchd >>"$log" 2>&1 ;;
        ovn-controller) log=$LOG_DIR/ovn-ctl.log && "$OVN_CTL" stop_controller >>"$log" 2>&1 ;;
        # --ovn-manage-ovsdb=no: stop northd alone; the databases are separate entries.
        ovn-northd) log=$LOG_DIR/ovn-ctl.log && "$OVN_CTL" --ovn-manage-ovsdb=no stop_northd >>"$log" 2>&1 ;;
        ovn-sb) log=$LOG_DIR/ovn-ctl.log && "$OVN_CTL" stop_sb_ovsdb >>"$log" 2>&1 ;;
        ovn-nb) log=$LOG_DIR/ovn-ctl.log && "$OVN_CTL" stop_nb_ovsdb >>"$log" 2>&1 ;;
    esac
}

cmd_down() {
    need_root
    take_lock
    local i name pid
    # The kuryr daemon `make demo` started goes first: it talks to everything below.
    if [ -f "$STATE_DIR/kuryr-daemon.pid" ]; then
        pid=$(cat "$STATE_DIR/kuryr-daemon.pid")
        if kill -0 "$pid" 2>/dev/null && grep -q kuryr "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid" && say "kuryr daemon" stopped
        fi
        rm -f "$STATE_DIR/kuryr-daemon.pid"
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        if ! recorded "$name"; then
            is_alive "$name" && say "$name" "left running (not started by lab.sh)"
            continue
        fi
        if ! is_alive "$name"; then
            say "$name" "already stopped"
        else
            stop_daemon "$name" || fail "$name" "could not stop it" "$LOG_DIR/ovs-ctl.log" "$LOG_DIR/ovn-ctl.log"
            say "$name" stopped
        fi
        forget "$name"
    done
    rm -f "$STATE_FILE"
}

# ---------------------------------------------------------------------------------------
# status

cmd_status() {
    local name rc=0 by
    need_root
    for name in "${DAEMONS[@]}"; do
        by=""
        recorded "$name" && by=" (started by lab.sh)"
        if is_running "$name"; then
            say "$name" "running$by"
        elif is_alive "$name"; then
            say "$name" "alive but not answering$by"
            rc=1
        else
            say "$name" "not running"
            rc=1
        fi
    done
    if is_running ovsdb-server && ovs-vsctl --timeout=5 br-exists "$BRIDGE"; then
        say "$BRIDGE" "present ($(ovs-vsctl --timeout=5 get Bridge "$BRIDGE" datapath_type))"
    else
        say "$BRIDGE" "absent"
        rc=1
    fi
    if is_running ovn-controller && chassis_ready; then
        say chassis "registered in the SB"
    else
        say chassis "not registered"
        rc=1
    fi
    if is_running dockerd && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
        say "$IMAGE" present
    else
        say "$IMAGE" absent
        rc=1
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# restart

cmd_restart() {
    local name=$1 pid
    need_root
    is_alive "$name" || (($? != 2)) || fail "$name" "no such component (one of: ${DAEMONS[*]})"
    take_lock
    recorded "$name" || fail "$name" "not started by lab.sh: restart it yourself"
    if [[ $name == dockerd ]]; then
        stop_dockerd
    else
        case $name in
            ovsdb-server | ovs-vswitchd) pid=$(alive_pid "$OVS_RUNDIR/$name.pid" "$name") || true ;;
            ovn-nb) pid=$(alive_pid "$OVN_RUNDIR/ovnnb_db.pid" ovsdb-server) || true ;;
            ovn-sb) pid=$(alive_pid "$OVN_RUNDIR/ovnsb_db.pid" ovsdb-server) || true ;;
            *) pid=$(alive_pid "$OVN_RUNDIR/$name.pid" "$name") || true ;;
        esac
        if [[ -n $pid ]]; then
            kill -KILL "$pid"
            wait_for "$WAIT" pid_gone "$pid" || fail "$name" "pid $pid survived SIGKILL"
        fi
    fi
    say "$name" stopped
    up_all
}

usage() {
    echo "usage: $0 up|down|status|restart NAME" >&2
    exit 2
}

main() {
    case ${1:-} in
        up | down | status) (($# == 1)) || usage ;;
        restart) (($# == 2)) || usage ;;
        *) usage ;;
    esac
    case $1 in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        restart) cmd_restart "$2" ;;
    esac
}

main "$@"
