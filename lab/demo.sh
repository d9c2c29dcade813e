#!/usr/bin/env bash
# The demo behind `make demo`: a kuryr daemon (started unless one already serves the socket), a
# kuryr network, two containers on it, one pinging the other. The network and containers are
# removed at the end; the daemon keeps running for you to try more (`kill $(cat $PIDFILE)`).
set -euo pipefail

DOCKER=/usr/bin/docker
KURYR=${KURYR:-target/release/kuryr}
SOCK=/run/docker/plugins/kuryr.sock
STATE=/run/kuryr-lab
PIDFILE=$STATE/kuryr-daemon.pid
LOG=/var/log/kuryr-lab/kuryr-daemon.log
NET=kuryr-demo
IMAGE=kuryr-busybox:latest

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

answers() {
    [ -S "$SOCK" ] && curl -sf --unix-socket "$SOCK" -X POST http://localhost/Plugin.Activate >/dev/null 2>&1
}

start_daemon() {
    # A daemon an earlier demo started is restarted, so the demo runs the binary just built.
    if [ -f "$PIDFILE" ]; then
        local old
        old=$(cat "$PIDFILE")
        if kill -0 "$old" 2>/dev/null && grep -q kuryr "/proc/$old/cmdline" 2>/dev/null; then
            kill "$old"
            for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
            echo "kuryr daemon: stopped the one an earlier demo started (pid $old)"
        fi
        rm -f "$PIDFILE"
    fi
    if answers; then
        echo "kuryr daemon: already serving $SOCK"
        return
    fi
    [ -x "$KURYR" ] || { echo "demo: $KURYR is missing: run 'make release'" >&2; exit 1; }
    mkdir -p "$STATE" "$(dirname "$LOG")"
    setsid "$KURYR" daemon >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        answers && { echo "kuryr daemon: started (pid $(cat "$PIDFILE"), log $LOG)"; return; }
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
        sleep 0.1
    done
    echo "demo: kuryr daemon did not start; its log ($LOG) ends with:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
}

cleanup() {
    $DOCKER rm -f kuryr-demo-a >/dev/null 2>&1 || true
    $DOCKER network rm "$NET" >/dev/null 2>&1 || true
}

command -v curl >/dev/null || { echo "demo: curl is missing: run 'make lab'" >&2; exit 1; }
say "kuryr daemon"
start_daemon
cleanup
trap cleanup EXIT

say "docker network create -d kuryr --ipam-driver kuryr --subnet 10.250.0.0/24 $NET"
$DOCKER network create -d kuryr --ipam-driver kuryr --subnet 10.250.0.0/24 "$NET"

say "docker run -d --name kuryr-demo-a --net $NET $IMAGE sleep 300"
$DOCKER run -d --name kuryr-demo-a --net "$NET" "$IMAGE" sleep 300
A_IP=$($DOCKER inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" kuryr-demo-a)
echo "kuryr-demo-a has $A_IP"

say "the logical switch and ports in OVN Northbound"
ovn-nbctl show | sed -n "/kuryr-net-/,/^switch\|^router/p" | head -n 12

say "docker run --rm --net $NET $IMAGE ping -c 3 $A_IP"
$DOCKER run --rm --net "$NET" "$IMAGE" ping -c 3 "$A_IP"

say "the gateway is a port of the router kuryr-router: docker run --rm --net $NET $IMAGE ping -c 1 10.250.0.1"
$DOCKER run --rm --net "$NET" "$IMAGE" ping -c 1 10.250.0.1

say "two containers on a kuryr network talk to each other; cleaning up the demo network"
