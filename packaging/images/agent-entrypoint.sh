#!/bin/sh
# The agent image's entrypoint: `kuryr daemon` on the host's network, configured by a
# mounted /etc/kuryr/kuryr.conf and/or environment variables. kuryr-libnetwork's image
# variables are mapped to the kuryr.conf keys they set there; OS_<SECTION>__<KEY> variables
# (read by kuryr itself) set any other key and win over both.
set -e
map() { # map VAR OS_SECTION__KEY: VAR's value as the key, unless the key is set already
    eval "v=\${$1:-}"
    eval "set_already=\${$2:-}"
    if [ -n "$v" ] && [ -z "$set_already" ]; then
        export "$2=$v"
    fi
}
map SERVICE_USER OS_NEUTRON__USERNAME
map SERVICE_PASSWORD OS_NEUTRON__PASSWORD
map SERVICE_PROJECT_NAME OS_NEUTRON__PROJECT_NAME
map SERVICE_DOMAIN_NAME OS_NEUTRON__PROJECT_DOMAIN_NAME
map USER_DOMAIN_NAME OS_NEUTRON__USER_DOMAIN_NAME
map IDENTITY_URL OS_NEUTRON__AUTH_URL
map CAPABILITY_SCOPE OS_DEFAULT__CAPABILITY_SCOPE
if [ -n "${IDENTITY_URL:-}" ]; then
    # kuryr-libnetwork's image talks to Neutron with a Keystone password.
    export OS_DEFAULT__BACKEND="${OS_DEFAULT__BACKEND:-neutron}"
    export OS_NEUTRON__AUTH_TYPE="${OS_NEUTRON__AUTH_TYPE:-password}"
fi
if [ -n "${LOG_LEVEL:-}" ] && [ -z "${RUST_LOG:-}" ]; then
    RUST_LOG=$(echo "$LOG_LEVEL" | tr 'A-Z' 'a-z')
    [ "$RUST_LOG" = critical ] && RUST_LOG=error
    [ "$RUST_LOG" = warning ] && RUST_LOG=warn
    export RUST_LOG
fi
# A container's /proc/sys is read-only: the host's, bind-mounted at /host/proc/sys, is used.
if [ -z "${KURYR_PROC_SYS:-}" ] && [ -e /host/proc/sys/net ]; then
    export KURYR_PROC_SYS=/host/proc/sys
fi
exec /usr/bin/kuryr daemon "$@"
