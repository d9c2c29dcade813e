#!/usr/bin/env bash
# The reference kuryr-rs is measured against and migrates from: the Python kuryr-libnetwork
# 18.0.0 from PyPI, on top of `lab/openstack.sh up` (its Neutron without auth on 127.0.0.1:9696).
#
#   lab/kuryr-libnetwork.sh up      install what is missing, start what is not running (idempotent)
#   lab/kuryr-libnetwork.sh down    stop and remove only what `up` started or wrote
#   lab/kuryr-libnetwork.sh status  one line per component; exit 1 if any is missing
#   lab/kuryr-libnetwork.sh env     the venv, kuryr.conf, URL and Docker driver name (shell syntax)
#
# Components:
#   venv     /var/lib/kuryr-lab/kuryr-libnetwork/venv, made from Debian's /usr/bin/python3, with
#            kuryr-libnetwork==18.0.0 (it brings kuryr-lib and its binding scripts, installed
#            under the venv's libexec/kuryr, which `bindir` points at)
#   conf     .../etc/kuryr.conf: `[neutron] auth_type = none` against the lab's Neutron, the
#            veth port driver (the port's vif_type from Neutron, `ovs` under ML2/OVN, picks the
#            script that plugs the host end into br-int), kuryr_uri http://127.0.0.1:23751
#   neutron  a Neutron API process of its own on 127.0.0.1:9698: the lab's Neutron code, database
#            and OVN (openstack.sh's noauth config files and venv), so that its load and logs
#            stay apart from the tests that use 9696. Like every lab uwsgi it answers
#            `Connection: close`: uwsgi's http-socket drops a connection after each answer, and
#            kuryr-libnetwork's client (requests through keystoneauth) reuses connections, so
#            without it its second Neutron call fails with "Connection reset by peer"
#   server   its own `kuryr-server` entry point (Flask's threaded server; what devstack runs)
#   spec     /etc/docker/plugins/kuryr-libnetwork.spec -> http://127.0.0.1:23751: Docker names a
#            plugin after its spec file, so the driver is `kuryr-libnetwork` and does not clash
#            with kuryr-rs' `kuryr` (kuryr-libnetwork's own packaging installs `kuryr.spec`)
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

readonly VERSION=18.0.0
readonly PY=/usr/bin/python3
readonly STATE_DIR=/run/kuryr-lab
readonly STATE_FILE=$STATE_DIR/kuryr-libnetwork-started
readonly LOG_DIR=/var/log/kuryr-lab
readonly DIR=/var/lib/kuryr-lab/kuryr-libnetwork
readonly VENV=$DIR/venv
readonly CONF=$DIR/etc/kuryr.conf
readonly PIDFILE=$STATE_DIR/kuryr-libnetwork.pid
readonly PORT=23751
readonly URL=http://127.0.0.1:$PORT
readonly DRIVER=kuryr-libnetwork
readonly SPEC=/etc/docker/plugins/$DRIVER.spec
readonly LAB_NEUTRON=http://127.0.0.1:9696
readonly OS_DIR=/var/lib/kuryr-lab/openstack
readonly NEUTRON_PORT=9698
readonly NEUTRON=http://127.0.0.1:$NEUTRON_PORT
readonly NEUTRON_PIDFILE=$STATE_DIR/kuryr-libnetwork-neutron.pid
WAIT=${LAB_WAIT:-60}

take_lock() {
    mkdir -p "$STATE_DIR" "$LOG_DIR" "$DIR/etc"
    lock_or_fail "$STATE_DIR/kuryr-libnetwork.lock" 300 kuryr-libnetwork
}

# The pid file names a live kuryr-server of this venv.
is_alive() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$VENV/bin/kuryr-server"
}
neutron_alive() {
    local pid
    pid=$(cat "$NEUTRON_PIDFILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == uwsgi* ]]
}
neutron_running() { curl -fsS -m 5 -o /dev/null "$NEUTRON/v2.0/networks?limit=1" 2>/dev/null; }
# It answers Docker's handshake.
is_running() {
    curl -fsS -m 5 -X POST "$URL/Plugin.Activate" 2>/dev/null | grep -q NetworkDriver
}
spec_text() { echo "$URL"; }

up_venv() {
    local want="kuryr-libnetwork==$VERSION"
    if [[ -x $VENV/bin/kuryr-server && $(cat "$VENV/.kuryr-lab" 2>/dev/null) == "$want" ]]; then
        say venv "already installed"
        return
    fi
    say venv "installing $want"
    local log=$LOG_DIR/kuryr-libnetwork-pip.log t0=$SECONDS
    [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV" >>"$log" 2>&1 || fail venv "python3 -m venv failed" "$log"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$want" >>"$log" 2>&1 ||
        fail venv "pip install $want failed" "$log"
    [[ -x $VENV/libexec/kuryr/ovs ]] || fail venv "kuryr-lib's binding scripts are not in $VENV/libexec/kuryr"
    echo "$want" >"$VENV/.kuryr-lab"
    say venv "installed in $((SECONDS - t0))s"
}

write_conf() {
    cat >"$CONF.new" <<EOF
[DEFAULT]
kuryr_uri = $URL
bindir = $VENV/libexec/kuryr
capability_scope = local
process_external_connectivity = True
log_file = $LOG_DIR/kuryr-libnetwork-app.log
[neutron]
auth_type = none
endpoint = $NEUTRON
vif_plugging_timeout = 20
[binding]
driver = kuryr.lib.binding.drivers.veth
EOF
    mv "$CONF.new" "$CONF"
}

up_neutron() {
    curl -fsS -m 5 -o /dev/null "$LAB_NEUTRON/v2.0/networks?limit=1" ||
        fail neutron "no Neutron on $LAB_NEUTRON: run \`make lab-openstack\` first"
    local src=$OS_DIR/etc/neutron-noauth etc=$DIR/etc/neutron
    [[ -f $src/neutron.conf && -x $OS_DIR/neutron-venv/bin/python ]] ||
        fail neutron "$src/neutron.conf or $OS_DIR/neutron-venv missing: run \`make lab-openstack\`"
    mkdir -p "$etc"
    sed "s|^log_file = .*|log_file = $LOG_DIR/kuryr-libnetwork-neutron-app.log|" "$src/neutron.conf" >"$etc/neutron.conf"
    cp "$src/ml2_conf.ini" "$etc/ml2_conf.ini"
    if neutron_running; then
        say neutron "already running on $NEUTRON"
        return
    fi
    if recorded neutron && neutron_alive; then
        kill -TERM "$(cat "$NEUTRON_PIDFILE")" || true
        wait_for 30 bash -c "! kill -0 $(cat "$NEUTRON_PIDFILE") 2>/dev/null" || true
    fi
    cat >"$etc/uwsgi.ini" <<INI
[uwsgi]
plugins-dir = /usr/lib/uwsgi/plugins
plugin = python3
virtualenv = $OS_DIR/neutron-venv
module = neutron.wsgi.api:application
http-socket = 127.0.0.1:$NEUTRON_PORT
add-header = Connection: close
master = true
processes = 1
threads = 4
lazy-apps = true
enable-threads = true
die-on-term = true
buffer-size = 65535
pidfile = $NEUTRON_PIDFILE
daemonize = $LOG_DIR/kuryr-libnetwork-neutron.log
env = OS_NEUTRON_CONFIG_FILES=$etc/neutron.conf;$etc/ml2_conf.ini
INI
    local t0=$SECONDS
    record neutron
    uwsgi --ini "$etc/uwsgi.ini" 9>&- >>"$LOG_DIR/kuryr-libnetwork-neutron.log" 2>&1 ||
        fail neutron "uwsgi did not start" "$LOG_DIR/kuryr-libnetwork-neutron.log"
    wait_for 90 neutron_running ||
        fail neutron "not answering on $NEUTRON after 90s" "$LOG_DIR/kuryr-libnetwork-neutron.log" \
            "$LOG_DIR/kuryr-libnetwork-neutron-app.log"
    say neutron "started on $NEUTRON in $((SECONDS - t0))s"
}

up_server() {
    if is_running; then
        say kuryr-server "already running on $URL"
        return
    fi
    if recorded kuryr-server && is_alive; then
        # Ours, alive, not answering: restart it.
        kill -TERM "$(cat "$PIDFILE")" || true
        wait_for 20 bash -c "! kill -0 $(cat "$PIDFILE") 2>/dev/null" || true
    fi
    local t0=$SECONDS log=$LOG_DIR/kuryr-libnetwork.log
    record kuryr-server
    setsid "$VENV/bin/kuryr-server" --config-file "$CONF" >>"$log" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDFILE"
    wait_for "$WAIT" is_running ||
        fail kuryr-server "not answering on $URL after ${WAIT}s" "$log" "$LOG_DIR/kuryr-libnetwork-app.log"
    say kuryr-server "started on $URL in $((SECONDS - t0))s"
}

up_spec() {
    mkdir -p "$(dirname "$SPEC")"
    if [[ -f $SPEC ]]; then
        [[ $(cat "$SPEC") == "$(spec_text)" ]] ||
            fail spec "$SPEC exists and points elsewhere: $(cat "$SPEC"); not touching it"
        say spec "already present ($SPEC)"
        return
    fi
    record spec
    spec_text >"$SPEC"
    say spec "$SPEC -> $URL (Docker driver $DRIVER)"
}

cmd_up() {
    need_root
    take_lock
    local t0=$SECONDS
    up_venv
    up_neutron
    # Also when already running: an earlier `up` may have stopped before this step.
    warm_neutron_policy neutron "$NEUTRON"
    write_conf
    up_server
    up_spec
    say kuryr-libnetwork "ready in $((SECONDS - t0))s"
}

cmd_down() {
    need_root
    take_lock
    if recorded spec; then
        if [[ -f $SPEC && $(cat "$SPEC") == "$(spec_text)" ]]; then
            rm -f "$SPEC"
            say spec removed
        fi
        forget spec
    fi
    if recorded kuryr-server; then
        if is_alive; then
            local pid
            pid=$(cat "$PIDFILE")
            kill -TERM "$pid"
            wait_for 30 bash -c "! kill -0 $pid 2>/dev/null" || fail kuryr-server "pid $pid still alive 30s after SIGTERM"
            say kuryr-server stopped
        else
            say kuryr-server "already stopped"
        fi
        rm -f "$PIDFILE"
        forget kuryr-server
    else
        is_running && say kuryr-server "left running (not started by kuryr-libnetwork.sh)"
    fi
    if recorded neutron; then
        if neutron_alive; then
            local npid
            npid=$(cat "$NEUTRON_PIDFILE")
            kill -TERM "$npid"
            wait_for 30 bash -c "! kill -0 $npid 2>/dev/null" || fail neutron "pid $npid still alive 30s after SIGTERM"
            say neutron stopped
        fi
        rm -f "$NEUTRON_PIDFILE"
        forget neutron
    fi
    rm -f "$STATE_FILE"
}

cmd_status() {
    local rc=0 by=""
    if [[ -x $VENV/bin/kuryr-server ]]; then
        say venv "installed ($(cat "$VENV/.kuryr-lab" 2>/dev/null))"
    else
        say venv "not installed"
        rc=1
    fi
    if neutron_running; then say neutron "running on $NEUTRON"; else
        say neutron "not running"
        rc=1
    fi
    recorded kuryr-server && by=" (started by kuryr-libnetwork.sh)"
    if is_running; then say kuryr-server "running on $URL$by"; else
        say kuryr-server "not running"
        rc=1
    fi
    if [[ -f $SPEC ]]; then say spec "$SPEC -> $(cat "$SPEC")"; else
        say spec "missing"
        rc=1
    fi
    return "$rc"
}

cmd_env() {
    cat <<EOF
KURYR_LIBNETWORK_VENV=$VENV
KURYR_LIBNETWORK_CONF=$CONF
KURYR_LIBNETWORK_URL=$URL
KURYR_LIBNETWORK_DRIVER=$DRIVER
KURYR_LIBNETWORK_NEUTRON=$NEUTRON
EOF
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
