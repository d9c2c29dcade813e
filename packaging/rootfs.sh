#!/usr/bin/env bash
# Builds a minimal root filesystem from this machine's own files (installed from Debian
# packages): the kuryr binary, iptables, the shared libraries they load, CA certificates.
# No registry, no network. Used by `make plugin` (the managed plugin's rootfs) and
# `make images` (the agent image).
#
#   packaging/rootfs.sh DIR KURYR_BINARY [EXTRA_PROGRAM...]
#
# EXTRA_PROGRAM: more programs to copy with their libraries (e.g. /bin/busybox).
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

die() {
    echo "rootfs.sh: $*" >&2
    exit 1
}

[[ $# -ge 2 ]] || die "usage: rootfs.sh DIR KURYR_BINARY [EXTRA_PROGRAM...]"
dir=$1
kuryr=$2
shift 2
[[ -x $kuryr ]] || die "$kuryr is not an executable (build it with \`cargo build --release -p kuryr\`)"
iptables=$(readlink -f "$(command -v iptables || true)") ||
    die "iptables is not installed (apt-get install iptables): routed networks need it"
[[ -x $iptables ]] || die "iptables is not installed (apt-get install iptables): routed networks need it"

rm -rf "$dir"
mkdir -p "$dir"/{usr/bin,usr/sbin,etc/kuryr,etc/ssl/certs,run/docker/plugins,run/kuryr,tmp}
mkdir -p "$dir"/var/run/openvswitch "$dir"/var/run/ovn "$dir"/host/proc/sys
chmod 1777 "$dir/tmp"

# copy FILE: FILE at the same path under DIR, symlinks kept and their targets copied too.
copy() {
    local f=$1
    while [[ -L $f ]]; do
        mkdir -p "$dir$(dirname "$f")"
        cp -a "$f" "$dir$f"
        local t
        t=$(readlink "$f")
        [[ $t == /* ]] || t=$(dirname "$f")/$t
        f=$t
    done
    [[ -e $dir$f ]] && return 0
    mkdir -p "$dir$(dirname "$f")"
    cp -a "$f" "$dir$f"
}

# libs PROGRAM: the shared libraries PROGRAM loads, with the loader.
libs() {
    ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' || true
}

install -m 0755 "$kuryr" "$dir/usr/bin/kuryr"
strip --strip-debug "$dir/usr/bin/kuryr" 2>/dev/null || true
for lib in $(libs "$kuryr"); do copy "$lib"; done

# iptables and ip6tables (the backend, nft or legacy, this host's alternatives chose), its
# extension modules and what they load.
copy "$iptables"
for name in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore; do
    ln -sf "$iptables" "$dir/usr/sbin/$name"
done
for lib in $(libs "$iptables"); do copy "$lib"; done
xt=/usr/lib/$(uname -m)-linux-gnu/xtables
if [[ -d $xt ]]; then
    for m in "$xt"/*.so; do
        copy "$m"
        for lib in $(libs "$m"); do copy "$lib"; done
    done
fi
[[ -f /etc/ethertypes ]] && copy /etc/ethertypes
for f in /etc/protocols /etc/services; do [[ -f $f ]] && copy "$f"; done

for prog in "$@"; do
    [[ -x $prog ]] || die "$prog is not an executable"
    copy "$prog"
    for lib in $(libs "$prog"); do copy "$lib"; done
done

# TLS to Northbound, Keystone and Neutron.
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
[[ -f /usr/lib/ssl/openssl.cnf ]] && copy /usr/lib/ssl/openssl.cnf

printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$dir/etc/passwd"
printf 'root:x:0:\n' >"$dir/etc/group"
echo "rootfs.sh: $dir: $(du -sh "$dir" | cut -f1)"
