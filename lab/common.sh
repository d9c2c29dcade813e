# shellcheck shell=bash
# Helpers every lab script shares; sourced, not run. The sourcing script sets STATE_FILE
# (what it started, one name per line) before calling record/recorded/forget.

say() { printf '%s: %s\n' "$1" "$2"; }

# fail COMPONENT MESSAGE [LOG...]: say what failed, show the end of the logs that explain it,
# and stop.
fail() {
    local component=$1 message=$2 log
    shift 2
    printf '%s: FAILED: %s\n' "$component" "$message" >&2
    for log in "$@"; do
        printf '  read %s; it ends with:\n' "$log" >&2
        tail -n 20 "$log" 2>/dev/null | sed 's/^/    | /' >&2 || true
    done
    exit 1
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; false once SECONDS passed.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# alive_pid PIDFILE COMM: prints the pid when the pid file names a live process called COMM.
# Checking the name matters after a reboot or kill: a stale pid may now belong to anything.
# The file is read once: a daemon asked to exit removes its pid file as it goes.
alive_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] &&
        echo "$pid"
}
pidfile_alive() { alive_pid "$@" >/dev/null; }

# json_get PATH: one value from JSON on stdin, PATH like project.id or roles.0.id.
json_get() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); exec("for k in sys.argv[1].split(\".\"):\n  d=d[int(k)] if isinstance(d,list) else d[k]"); print(d if d is not None else "")' "$1"; }

# Start a daemon without the lock's file descriptor, or it would hold the lock for its life.
spawn() { "$@" 9>&-; }

recorded() { [[ -f $STATE_FILE ]] && grep -qxF -- "$1" "$STATE_FILE"; }
record() { recorded "$1" || echo "$1" >>"$STATE_FILE"; }
forget() {
    [[ -f $STATE_FILE ]] || return 0
    grep -vxF -- "$1" "$STATE_FILE" >"$STATE_FILE.new" || true
    mv "$STATE_FILE.new" "$STATE_FILE"
}

need_root() {
    if [[ $(id -u) != 0 ]]; then
        echo "$(basename "$0"): must run as root (it installs packages, starts daemons, creates interfaces)" >&2
        exit 1
    fi
}

# lock_or_fail LOCKFILE SECONDS COMPONENT: one run of a lab script at a time.
lock_or_fail() {
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    flock -w "$2" 9 || fail "$3" "another $(basename "$0") is still running (lock $1)"
}

# warm_neutron_policy COMPONENT URL [TOKEN]: Neutron builds its policy engine on the first
# request that enforces a policy, and a request arriving meanwhile on another thread is judged
# against an engine without rules: "rule:create_subnetpool is disallowed by policy" for an
# admin (3 of 4 parallel creates on a fresh Neutron here). Listing an empty collection
# enforces nothing, so one subnet pool is created and deleted before tests run in parallel.
# Without TOKEN (noauth) the pool names its project itself.
warm_neutron_policy() {
    local comp=$1 url=$2 token=${3:-} body out id
    local auth=(-H "X-Auth-Token: ${token:-unused}")
    body='{"subnetpool":{"name":"kuryr-lab-warmup","prefixes":["198.18.255.0/24"],"min_prefixlen":24'
    [[ -n $token ]] || body+=',"project_id":"kuryr-lab-warmup"'
    body+='}}'
    out=$(curl -sS -m 60 -X POST "${auth[@]}" -H 'Content-Type: application/json' -d "$body" \
        "$url/v2.0/subnetpools" 2>&1) || fail "$comp" "creating a subnet pool to warm up Neutron failed: $out"
    id=$(json_get subnetpool.id <<<"$out" 2>/dev/null) ||
        fail "$comp" "creating a subnet pool to warm up Neutron answered: $out"
    curl -fsS -m 60 -X DELETE "${auth[@]}" "$url/v2.0/subnetpools/$id" >/dev/null ||
        fail "$comp" "could not delete warm-up subnet pool $id on $url"
}
