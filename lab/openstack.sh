#!/usr/bin/env bash
# The OpenStack part of the lab: what the Neutron-mode tests talk to, on top of `lab.sh up`.
#
#   lab/openstack.sh up      install what is missing, start what is not running (idempotent)
#   lab/openstack.sh down    stop only what `up` started, newest first
#   lab/openstack.sh status  one line per component; exit 1 if any is not running
#   lab/openstack.sh env     print the endpoints and credentials tests read (shell syntax)
#
# Components: MariaDB (Debian's, on 127.0.0.1:3306), Keystone 30.0.0 (PyPI, its own venv,
# uwsgi on 127.0.0.1:5000, fernet tokens, an admin, a password user and an application
# credential; a second instance on 127.0.0.1:5001, same database and fernet keys, issues
# tokens that expire after LAB_SHORT_TOKEN_EXPIRATION seconds, default 20, for expiry
# tests), Neutron 29.0.0 (PyPI, its own venv, uwsgi, ML2/OVN pointed at the lab's
# Northbound/Southbound sockets, neutron_sync_mode = off so it leaves OVN objects it does
# not own alone) twice on one database: without auth on 127.0.0.1:9696 and behind Keystone
# on 127.0.0.1:9697. Both venvs are made from Debian's /usr/bin/python3, the Python that
# Debian's uwsgi-plugin-python3 is built against.
#
# Nothing here is cached outside this script: a fresh machine installs everything (about
# 2 minutes of apt-get and pip), a machine where it all runs changes nothing.
set -euo pipefail
# shellcheck source=lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PATH=$PATH:/usr/sbin:/sbin

readonly STATE_DIR=/run/kuryr-lab
readonly STATE_FILE=$STATE_DIR/openstack-started
readonly LOG_DIR=/var/log/kuryr-lab
readonly OS_DIR=/var/lib/kuryr-lab/openstack
readonly RUN_DIR=$STATE_DIR/openstack
readonly NB_DB=unix:/var/run/ovn/ovnnb_db.sock
readonly SB_DB=unix:/var/run/ovn/ovnsb_db.sock
readonly NEUTRON_VERSION=29.0.0
readonly KEYSTONE_VERSION=30.0.0
readonly PY=/usr/bin/python3
WAIT=${LAB_WAIT:-90}

# Lab-only secrets for services that listen on loopback only.
readonly DB_USER=kuryrlab DB_PASS=kuryrlab-db
readonly ADMIN_PASS=kuryrlab-admin
readonly USER_NAME=kuryr USER_PASS=kuryrlab-user PROJECT=kuryr-lab
# A user with only the member role in the project (no admin anywhere): what a tenant's VM has.
readonly MEMBER_NAME=kuryr-member MEMBER_PASS=kuryrlab-member
readonly APPCRED_NAME=kuryr-lab-appcred APPCRED_SECRET=kuryrlab-appcred-secret

readonly PACKAGES=(mariadb-server uwsgi-core uwsgi-plugin-python3 python3-venv)
readonly DAEMONS=(mariadb keystone keystone-short neutron-noauth neutron-keystone)
# Lifetime of the tokens keystone-short issues (Keystone's default, 3600 s, is too long to
# wait for in a test).
readonly SHORT_TOKEN_EXPIRATION=${LAB_SHORT_TOKEN_EXPIRATION:-20}

take_lock() {
    mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
    lock_or_fail "$STATE_DIR/openstack.lock" 900 openstack
}

pidfile() {
    case $1 in
        mariadb) echo /run/mysqld/mysqld.pid ;;
        *) echo "$RUN_DIR/$1.pid" ;;
    esac
}
# is_alive NAME: its pid file names a live process of the expected program.
is_alive() {
    local pid comm
    pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case $1 in
        mariadb) [[ $comm == mariadbd || $comm == mysqld ]] ;;
        *) [[ $comm == uwsgi* ]] ;;
    esac
}
port_of() {
    case $1 in
        keystone) echo 5000 ;;
        keystone-short) echo 5001 ;;
        neutron-noauth) echo 9696 ;;
        neutron-keystone) echo 9697 ;;
    esac
}
# is_running NAME: it answers.
is_running() {
    case $1 in
        mariadb) mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1 ;;
        keystone) curl -fsS -m 5 http://127.0.0.1:5000/v3 >/dev/null 2>&1 ;;
        keystone-short) curl -fsS -m 5 http://127.0.0.1:5001/v3 >/dev/null 2>&1 ;;
        neutron-noauth) curl -fsS -m 5 http://127.0.0.1:9696/v2.0/networks?limit=1 >/dev/null 2>&1 ;;
        # Behind Keystone an anonymous request is refused with 401: that is an answer.
        neutron-keystone) [[ $(curl -sS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9697/v2.0/networks 2>/dev/null) == 401 ]] ;;
    esac
}

install_packages() {
    local pkg missing=()
    for pkg in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say packages "already installed"
        return
    fi
    say packages "installing ${missing[*]}"
    local log=$LOG_DIR/openstack-apt.log policy=/usr/sbin/policy-rc.d own_policy=no rc=0
    # Keep package scripts from starting MariaDB: `up` starts and records it itself.
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=yes
    fi
    {
        DEBIAN_FRONTEND=noninteractive apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    } >>"$log" 2>&1 || rc=$?
    [[ $own_policy == yes ]] && rm -f "$policy"
    ((rc == 0)) || fail packages "apt-get could not install ${missing[*]}" "$log"
}

# venv NAME PIP-ARGS...: a venv from Debian's python3 with exactly these packages; the
# marker file records what was installed so that a changed pin reinstalls.
venv() {
    local name=$1 dir=$OS_DIR/$1-venv
    shift
    local want="$*"
    if [[ -x $dir/bin/python && $(cat "$dir/.kuryr-lab" 2>/dev/null) == "$want" ]]; then
        say "$name venv" "already installed"
        return
    fi
    say "$name venv" "installing $want"
    local log=$LOG_DIR/openstack-pip-$name.log
    [[ -x $dir/bin/python ]] || "$PY" -m venv "$dir" >>"$log" 2>&1 || fail "$name venv" "python3 -m venv failed" "$log"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >>"$log" 2>&1 ||
        fail "$name venv" "pip install $want failed" "$log"
    echo "$want" >"$dir/.kuryr-lab"
}

up_mariadb() {
    if is_running mariadb; then
        say mariadb "already running"
    else
        record mariadb
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >>"$LOG_DIR/mariadb.log" 2>&1 ||
            fail mariadb "mariadb-install-db failed" "$LOG_DIR/mariadb.log"
        # A plain command with `&` (no function, no subshell left waiting) so that nothing
        # keeps the lock's descriptor open for mysqld_safe's whole life.
        setsid mysqld_safe --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
            >>"$LOG_DIR/mariadb.log" 2>&1 </dev/null 9>&- &
        wait_for "$WAIT" is_running mariadb || fail mariadb "not answering after ${WAIT}s" "$LOG_DIR/mariadb.log"
        say mariadb started
    fi
    local db
    for db in keystone neutron; do
        mysql -uroot -e "CREATE DATABASE IF NOT EXISTS $db;
            CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
            CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
            GRANT ALL ON $db.* TO '$DB_USER'@'127.0.0.1';
            GRANT ALL ON $db.* TO '$DB_USER'@'localhost';" ||
            fail mariadb "could not create database $db"
    done
}

db_url() { echo "mysql+pymysql://$DB_USER:$DB_PASS@127.0.0.1/$1?charset=utf8"; }

# uwsgi_start NAME MODULE PORT VENV ENV...: the WSGI app under Debian's uwsgi, daemonized.
uwsgi_start() {
    local name=$1 module=$2 port=$3 venv=$4
    shift 4
    local ini=$OS_DIR/etc/$name-uwsgi.ini
    cat >"$ini" <<EOF
[uwsgi]
plugins-dir = /usr/lib/uwsgi/plugins
plugin = python3
virtualenv = $venv
module = $module
http-socket = 127.0.0.1:$port
add-header = Connection: close
master = true
processes = 1
threads = 4
lazy-apps = true
enable-threads = true
die-on-term = true
buffer-size = 65535
pidfile = $(pidfile "$name")
daemonize = $LOG_DIR/$name.log
EOF
    local e pid
    for e in "$@"; do echo "env = $e" >>"$ini"; done
    # One of ours that is alive but does not answer (a worker in a respawn loop) holds the port.
    if recorded "$name" && is_alive "$name"; then
        pid=$(cat "$(pidfile "$name")")
        kill -TERM "$pid" && wait_for 30 bash -c "! kill -0 $pid 2>/dev/null" || true
    fi
    record "$name"
    spawn uwsgi --ini "$ini" >>"$LOG_DIR/$name.log" 2>&1 ||
        fail "$name" "uwsgi did not start" "$LOG_DIR/$name.log"
}

# write_keystone_conf NAME EXPIRATION: $OS_DIR/etc/NAME/keystone.conf. Every instance shares
# the database and the fernet key repository, so any of them validates the others' tokens.
write_keystone_conf() {
    local name=$1 expiration=$2
    mkdir -p "$OS_DIR/etc/$name" "$OS_DIR/keystone-keys/fernet" "$OS_DIR/keystone-keys/credential"
    cat >"$OS_DIR/etc/$name/keystone.conf" <<EOF
[DEFAULT]
log_file = $LOG_DIR/$name-app.log
[database]
connection = $(db_url keystone)
[token]
provider = fernet
expiration = $expiration
[fernet_tokens]
key_repository = $OS_DIR/keystone-keys/fernet
[credential]
key_repository = $OS_DIR/keystone-keys/credential
[identity]
password_hash_rounds = 4
[cache]
enabled = true
backend = oslo_cache.dict
EOF
}

keystone_ready() { is_running keystone; }

# os_cli ARGS: Keystone's REST API as the admin, for bootstrap steps only.
token_for() { # USER PASSWORD PROJECT -> token on stdout
    curl -fsS -m 10 -D - -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$1\",\"domain\":{\"id\":\"default\"},\"password\":\"$2\"}}},\"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" \
        http://127.0.0.1:5000/v3/auth/tokens | awk 'tolower($1)=="x-subject-token:"{print $2}' | tr -d '\r'
}
ks() { # METHOD PATH [BODY] with the admin token
    local tok=$1 method=$2 path=$3 body=${4:-}
    curl -fsS -m 10 -X "$method" -H "X-Auth-Token: $tok" -H 'Content-Type: application/json' \
        ${body:+-d "$body"} "http://127.0.0.1:5000/v3$path"
}

up_keystone() {
    venv keystone "keystone==$KEYSTONE_VERSION" PyMySQL
    write_keystone_conf keystone "${LAB_TOKEN_EXPIRATION:-3600}"
    write_keystone_conf keystone-short "$SHORT_TOKEN_EXPIRATION"
    local log=$LOG_DIR/keystone-manage.log
    # keystone-manage reads only --config-file (the WSGI app reads OS_KEYSTONE_CONFIG_DIR).
    local km=("$OS_DIR/keystone-venv/bin/keystone-manage" --config-file "$OS_DIR/etc/keystone/keystone.conf")
    if [[ ! -f $OS_DIR/keystone-keys/.bootstrapped ]]; then
        say keystone "db_sync, keys, bootstrap"
        "${km[@]}" db_sync >>"$log" 2>&1 || fail keystone "keystone-manage db_sync failed" "$log"
        "${km[@]}" fernet_setup --keystone-user root --keystone-group root >>"$log" 2>&1 || fail keystone "fernet_setup failed" "$log"
        "${km[@]}" credential_setup --keystone-user root --keystone-group root >>"$log" 2>&1 || fail keystone "credential_setup failed" "$log"
        "${km[@]}" bootstrap --bootstrap-password "$ADMIN_PASS" --bootstrap-admin-url http://127.0.0.1:5000/v3 \
            --bootstrap-public-url http://127.0.0.1:5000/v3 --bootstrap-internal-url http://127.0.0.1:5000/v3 \
            --bootstrap-region-id RegionOne >>"$log" 2>&1 || fail keystone "bootstrap failed" "$log"
        touch "$OS_DIR/keystone-keys/.bootstrapped"
    fi
    if is_running keystone; then
        say keystone "already running"
    else
        uwsgi_start keystone keystone.wsgi.api:application 5000 "$OS_DIR/keystone-venv" \
            "OS_KEYSTONE_CONFIG_DIR=$OS_DIR/etc/keystone"
        wait_for "$WAIT" keystone_ready || fail keystone "not answering on 127.0.0.1:5000 after ${WAIT}s" "$LOG_DIR/keystone.log" "$LOG_DIR/keystone-app.log"
        say keystone started
    fi
    setup_keystone_users
    setup_member_user
    up_keystone_short
}

# keystone-short: the same Keystone (database, fernet keys, users, catalog) whose tokens
# expire after SHORT_TOKEN_EXPIRATION seconds. The expiry is inside each fernet token, so
# the main instance, which Neutron's keystonemiddleware validates through, honours it.
up_keystone_short() {
    local want=$SHORT_TOKEN_EXPIRATION have
    have=$(cat "$RUN_DIR/keystone-short.expiration" 2>/dev/null || true)
    if is_running keystone-short && [[ $have == "$want" ]]; then
        say keystone-short "already running (tokens live ${want}s)"
        return
    fi
    # Not running, or running with another lifetime (LAB_SHORT_TOKEN_EXPIRATION changed):
    # uwsgi_start stops one of ours first.
    uwsgi_start keystone-short keystone.wsgi.api:application 5001 "$OS_DIR/keystone-venv" \
        "OS_KEYSTONE_CONFIG_DIR=$OS_DIR/etc/keystone-short"
    wait_for "$WAIT" is_running keystone-short ||
        fail keystone-short "not answering on 127.0.0.1:5001 after ${WAIT}s" \
            "$LOG_DIR/keystone-short.log" "$LOG_DIR/keystone-short-app.log"
    echo "$want" >"$RUN_DIR/keystone-short.expiration"
    say keystone-short "started (tokens live ${want}s)"
}

# The project, a member user, the network service's catalog entries and an application
# credential: the identities the tests log in with.
setup_keystone_users() {
    [[ -f $OS_DIR/keystone-keys/.users ]] && return 0
    local tok pid uid rid sid
    tok=$(token_for admin "$ADMIN_PASS" admin)
    [[ -n $tok ]] || fail keystone "admin cannot log in" "$LOG_DIR/keystone-app.log"
    pid=$(ks "$tok" POST /projects "{\"project\":{\"name\":\"$PROJECT\",\"domain_id\":\"default\"}}" | json_get project.id)
    uid=$(ks "$tok" POST /users "{\"user\":{\"name\":\"$USER_NAME\",\"domain_id\":\"default\",\"password\":\"$USER_PASS\",\"default_project_id\":\"$pid\"}}" | json_get user.id)
    rid=$(ks "$tok" GET '/roles?name=admin' | json_get roles.0.id)
    ks "$tok" PUT "/projects/$pid/users/$uid/roles/$rid" >/dev/null
    sid=$(ks "$tok" POST /services '{"service":{"name":"neutron","type":"network"}}' | json_get service.id)
    local iface
    for iface in public internal admin; do
        ks "$tok" POST /endpoints "{\"endpoint\":{\"service_id\":\"$sid\",\"interface\":\"$iface\",\"url\":\"http://127.0.0.1:9697\",\"region_id\":\"RegionOne\"}}" >/dev/null
    done
    local utok
    utok=$(token_for "$USER_NAME" "$USER_PASS" "$PROJECT")
    ks "$utok" POST "/users/$uid/application_credentials" \
        "{\"application_credential\":{\"name\":\"$APPCRED_NAME\",\"secret\":\"$APPCRED_SECRET\"}}" |
        json_get application_credential.id >"$OS_DIR/keystone-keys/appcred-id"
    touch "$OS_DIR/keystone-keys/.users"
    say keystone "project $PROJECT, user $USER_NAME, application credential, network endpoint"
}

# A project member without admin (Keystone's bootstrap makes the `member` role): the
# credentials a tenant gives the kuryr inside its VM.
setup_member_user() {
    [[ -f $OS_DIR/keystone-keys/.member ]] && return 0
    local tok pid uid rid
    tok=$(token_for admin "$ADMIN_PASS" admin)
    [[ -n $tok ]] || fail keystone "admin cannot log in" "$LOG_DIR/keystone-app.log"
    pid=$(ks "$tok" GET "/projects?name=$PROJECT" | json_get projects.0.id)
    uid=$(ks "$tok" POST /users "{\"user\":{\"name\":\"$MEMBER_NAME\",\"domain_id\":\"default\",\"password\":\"$MEMBER_PASS\",\"default_project_id\":\"$pid\"}}" | json_get user.id)
    rid=$(ks "$tok" GET '/roles?name=member' | json_get roles.0.id)
    [[ -n $pid && -n $uid && -n $rid ]] || fail keystone "could not create the member user $MEMBER_NAME" "$LOG_DIR/keystone-app.log"
    ks "$tok" PUT "/projects/$pid/users/$uid/roles/$rid" >/dev/null
    touch "$OS_DIR/keystone-keys/.member"
    say keystone "user $MEMBER_NAME (role member in $PROJECT)"
}

write_neutron_conf() {
    local dir=$OS_DIR/etc/$1 auth=$2
    mkdir -p "$dir"
    cat >"$dir/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = ovn-router,trunk
auth_strategy = $auth
transport_url = fake://
rpc_workers = 0
rpc_state_report_workers = 0
api_workers = 1
allow_overlapping_ips = true
api_paste_config = $OS_DIR/neutron-venv/etc/neutron/api-paste.ini
log_file = $LOG_DIR/$1-app.log
[database]
connection = $(db_url neutron)
[oslo_concurrency]
lock_path = $OS_DIR/lock-$1
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000/v3
auth_url = http://127.0.0.1:5000/v3
auth_type = password
username = admin
password = $ADMIN_PASS
project_name = admin
user_domain_name = Default
project_domain_name = Default
token_cache_time = -1
EOF
    cat >"$dir/ml2_conf.ini" <<EOF
[ml2]
mechanism_drivers = ovn
type_drivers = geneve,flat,vlan
tenant_network_types = geneve
extension_drivers = port_security
[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38
[ovn]
ovn_nb_connection = $NB_DB
ovn_sb_connection = $SB_DB
ovn_metadata_enabled = False
neutron_sync_mode = off
EOF
}

# What a running Neutron was started with: a change (e.g. a new service plugin) restarts it.
conf_sum() { cat "$OS_DIR/etc/$1/neutron.conf" "$OS_DIR/etc/$1/ml2_conf.ini" | sha256sum | cut -d' ' -f1; }

neutron_env() { echo "OS_NEUTRON_CONFIG_FILES=$OS_DIR/etc/$1/neutron.conf;$OS_DIR/etc/$1/ml2_conf.ini"; }

up_neutron() {
    venv neutron "neutron==$NEUTRON_VERSION" PyMySQL
    write_neutron_conf neutron-noauth noauth
    write_neutron_conf neutron-keystone keystone
    local log=$LOG_DIR/neutron-db-manage.log
    if [[ ! -f $OS_DIR/.neutron-db ]]; then
        say neutron "neutron-db-manage upgrade heads"
        "$OS_DIR/neutron-venv/bin/neutron-db-manage" --config-file "$OS_DIR/etc/neutron-noauth/neutron.conf" \
            --config-file "$OS_DIR/etc/neutron-noauth/ml2_conf.ini" upgrade heads >>"$log" 2>&1 ||
            fail neutron "neutron-db-manage upgrade heads failed" "$log"
        touch "$OS_DIR/.neutron-db"
    fi
    local name started=()
    for name in neutron-noauth neutron-keystone; do
        if is_running "$name" && [[ $(conf_sum "$name") == $(cat "$RUN_DIR/$name.conf-sum" 2>/dev/null) ]]; then
            say "$name" "already running"
            continue
        fi
        if is_running "$name"; then
            recorded "$name" || fail "$name" "running with another configuration than $OS_DIR/etc/$name, and not started by openstack.sh: stop it and run \`make lab-openstack\` again"
            say "$name" "configuration changed: restarting"
        fi
        conf_sum "$name" >"$RUN_DIR/$name.conf-sum"
        uwsgi_start "$name" neutron.wsgi.api:application "$(port_of "$name")" "$OS_DIR/neutron-venv" \
            "$(neutron_env "$name")"
        started+=("$name")
    done
    # Both load at once (5-7 s each): wait for them together.
    for name in "${started[@]}"; do
        wait_for "$WAIT" is_running "$name" ||
            fail "$name" "not answering on 127.0.0.1:$(port_of "$name") after ${WAIT}s" "$LOG_DIR/$name.log" "$LOG_DIR/$name-app.log"
        say "$name" started
    done
    # Also when already running: an earlier `up` may have stopped before this step.
    warm_neutron_policy neutron-noauth "http://127.0.0.1:$(port_of neutron-noauth)"
    warm_neutron_policy neutron-keystone "http://127.0.0.1:$(port_of neutron-keystone)" \
        "$(token_for "$USER_NAME" "$USER_PASS" "$PROJECT")"
}

cmd_up() {
    need_root
    take_lock
    mkdir -p "$OS_DIR/etc"
    local t0=$SECONDS
    install_packages
    prune_state
    up_mariadb
    up_keystone
    up_neutron
    say openstack "ready in $((SECONDS - t0))s"
}

prune_state() {
    local name names
    [[ -f $STATE_FILE ]] || return 0
    mapfile -t names <"$STATE_FILE"
    for name in "${names[@]}"; do is_alive "$name" || forget "$name"; done
}

cmd_down() {
    need_root
    take_lock
    local i name pid
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        if ! recorded "$name"; then
            is_alive "$name" && say "$name" "left running (not started by openstack.sh)"
            continue
        fi
        if is_alive "$name"; then
            pid=$(cat "$(pidfile "$name")")
            if [[ $name == mariadb ]]; then
                mysqladmin -uroot shutdown >/dev/null 2>&1 || kill -TERM "$pid"
            else
                kill -TERM "$pid"
            fi
            wait_for 60 bash -c "! kill -0 $pid 2>/dev/null" || fail "$name" "pid $pid still alive 60s after SIGTERM"
            say "$name" stopped
        else
            say "$name" "already stopped"
        fi
        forget "$name"
    done
    rm -f "$STATE_FILE"
}

cmd_status() {
    local name rc=0 by
    for name in "${DAEMONS[@]}"; do
        by=""
        recorded "$name" && by=" (started by openstack.sh)"
        if is_running "$name"; then
            say "$name" "running$by"
        else
            say "$name" "not running"
            rc=1
        fi
    done
    return "$rc"
}

# What tests and people need to talk to the lab's services.
cmd_env() {
    cat <<EOF
KURYR_LAB_NEUTRON_NOAUTH=http://127.0.0.1:9696
KURYR_LAB_NEUTRON_KEYSTONE=http://127.0.0.1:9697
KURYR_LAB_KEYSTONE=http://127.0.0.1:5000/v3
KURYR_LAB_KEYSTONE_SHORT=http://127.0.0.1:5001/v3
KURYR_LAB_SHORT_TOKEN_EXPIRATION=$(cat "$RUN_DIR/keystone-short.expiration" 2>/dev/null || echo "$SHORT_TOKEN_EXPIRATION")
KURYR_LAB_ADMIN_USER=admin
KURYR_LAB_ADMIN_PASSWORD=$ADMIN_PASS
KURYR_LAB_ADMIN_PROJECT=admin
KURYR_LAB_USER=$USER_NAME
KURYR_LAB_PASSWORD=$USER_PASS
KURYR_LAB_PROJECT=$PROJECT
KURYR_LAB_MEMBER_USER=$MEMBER_NAME
KURYR_LAB_MEMBER_PASSWORD=$MEMBER_PASS
KURYR_LAB_APPCRED_ID=$(cat "$OS_DIR/keystone-keys/appcred-id" 2>/dev/null)
KURYR_LAB_APPCRED_SECRET=$APPCRED_SECRET
EOF
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
