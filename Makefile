# Entry points for people and CI. `make test` is the whole gate; CI runs it through .ci/run.
# GNU make: recipes are tab-indented, each line runs in its own shell.

CARGO ?= cargo
LAB := lab/lab.sh

# A failing command in a piped or multi-command recipe line fails the target.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: all build lint unit test skip-banner lab lab-down lab-status demo release plugin images demo-driver bench fuzz soak \
	install uninstall deb \
	lab-openstack lab-openstack-down lab-openstack-status \
	lab-kuryr-libnetwork lab-kuryr-libnetwork-down lab-kuryr-libnetwork-status \
	lab-chassis lab-chassis-down lab-chassis-status \
	lab-vm lab-vm-down lab-vm-status \
	lab-nodes lab-nodes-down lab-nodes-status \
	lab-cluster lab-cluster-down lab-cluster-status

# Steps run in the order written (lab before tests, build before demo), even under -j:
# cargo parallelizes inside each step anyway.
.NOTPARALLEL:

all: build

build:
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit tests only: integration tests are #[ignore]d, so they show up as "ignored".
unit:
	$(CARGO) test --workspace

# Root: the lab (with kuryr-libnetwork, which the migration test starts a server of its own
# from), the managed plugin and the images (their tests install and run them), the Docker
# nodes running the plugin (the Swarm test), lint, then unit and integration tests.
# Not root: lint and unit tests, loudly; on CI (CI set) that is a failure, because
# integration tests must never be skipped there.
# Chosen when the Makefile is read, not inside a recipe, so that `make -n test` only
# prints what would run (make executes any recipe line that mentions $(MAKE)).
ifeq ($(shell id -u),0)
test: lab lab-openstack lab-kuryr-libnetwork plugin images lab-nodes lab-cluster lint
	$(CARGO) test --workspace -- --include-ignored
else
test: skip-banner lint unit
	@$(SKIP_BANNER)
	@if [ -n "$${CI:-}" ]; then \
		echo "make test: CI is set and integration tests were skipped: failing" >&2; \
		exit 1; \
	fi
endif

SKIP_BANNER = \
	echo "===================================================================================="; \
	echo "== SKIPPED: integration tests need root and the lab; ran lint and unit tests only =="; \
	echo "===================================================================================="

skip-banner:
	@$(SKIP_BANNER)

# The real stack the integration tests use: dockerd, OVS, OVN. Idempotent.
lab:
	$(LAB) up

# Stops only what `make lab` started.
lab-down:
	$(LAB) down

lab-status:
	$(LAB) status

# Neutron mode's services on top of the lab: MariaDB, Keystone, Neutron (ML2/OVN) from PyPI.
# Idempotent; about 2.5 minutes on a fresh machine, under a second when all runs.
lab-openstack: lab
	lab/openstack.sh up

# Stops only what `make lab-openstack` started (run before lab-down: Neutron uses OVN).
lab-openstack-down:
	lab/openstack.sh down

lab-openstack-status:
	lab/openstack.sh status

# The reference: kuryr-libnetwork 18.0.0 (PyPI) on the lab's Neutron, Docker driver
# `kuryr-libnetwork` at http://127.0.0.1:23751. `make test` runs it: the migration test
# starts its own kuryr-libnetwork server from this venv, against this Neutron process.
# Idempotent; about a minute on a fresh machine (pip), 10 s to start. Also for
# `kuryr bench`/`kuryr conformance`.
lab-kuryr-libnetwork: lab-openstack
	lab/kuryr-libnetwork.sh up

# Stops and removes only what `make lab-kuryr-libnetwork` started or wrote.
lab-kuryr-libnetwork-down:
	lab/kuryr-libnetwork.sh down

lab-kuryr-libnetwork-status:
	lab/kuryr-libnetwork.sh status

# Extra OVN chassis in network namespaces (own OVS + ovn-controller, Geneve/VXLAN over a
# veth between br-phy bridges), configured with `kuryr host init --ovsdb`. Idempotent; two
# by default (LAB_CHASSIS=N for another count). The multi-chassis test brings it up (and
# down again) itself when it is not running.
LAB_KURYR_BIN = $${CARGO_TARGET_DIR:-target}/debug/kuryr

lab-chassis: lab
	$(CARGO) build -p kuryr --bin kuryr
	KURYR=$(LAB_KURYR_BIN) lab/chassis.sh up

# Removes the chassis and puts the main chassis' ovn-encap-ip/-type back (run before lab-down).
lab-chassis-down:
	lab/chassis.sh down

lab-chassis-status:
	lab/chassis.sh status

# "VMs" for containers inside VMs: network + mount namespaces, each with its own OVS
# (breth0 holding eth0, underlay settings) and dockerd, its NIC a port of the host's br-int
# bound to the logical port kuryr-vm-N on switch kuryr-vms. Idempotent; two by default
# (LAB_VMS=N for another count). `lab/vm.sh exec N -- CMD` runs a command inside VM N.
lab-vm: lab
	$(CARGO) build -p kuryr --bin kuryr
	KURYR=$(LAB_KURYR_BIN) lab/vm.sh up

# Removes the VMs, their ports on br-int and their Northbound rows (run before lab-down).
lab-vm-down:
	lab/vm.sh down

lab-vm-status:
	lab/vm.sh status

# Docker hosts for Swarm: network + mount + UTS namespaces, each with its own OVS,
# ovn-controller (chassis kuryr-node-N) and dockerd, on the underlay 172.31.252.0/24; the
# managed plugin from LAB_NODES_PLUGIN (default PLUGIN_DIR, what `make plugin` builds) when it
# exists. Idempotent; three by default (LAB_NODES=N). `lab/node.sh exec N -- CMD` runs a
# command on node N (plain `docker` there is node N's dockerd).
lab-nodes: lab
	$(CARGO) build -p kuryr --bin kuryr
	KURYR=$(LAB_KURYR_BIN) LAB_NODES_PLUGIN=$${LAB_NODES_PLUGIN:-$(PLUGIN_DIR)} lab/node.sh up

# Removes the nodes, their chassis and the underlay (run before lab-down).
lab-nodes-down:
	lab/node.sh down

lab-nodes-status:
	LAB_NODES_PLUGIN=$${LAB_NODES_PLUGIN:-$(PLUGIN_DIR)} lab/node.sh status

# A clustered control plane: OVN NB and SB each a 3-member Raft cluster on loopback, an
# ovn-northd on both, and the Docker node kuryr-node-9 (lab/node.sh add 9, no plugin) whose
# ovn-controller uses the SB cluster; the failover test runs its own kuryr there. Leaves the
# main lab's OVN and nodes 1-3 alone. Idempotent (about 2 s from nothing).
lab-cluster: lab
	$(CARGO) build -p kuryr --bin kuryr
	KURYR=$(LAB_KURYR_BIN) lab/cluster.sh up

# Removes the node, ovn-northd and both clusters (run before lab-down).
lab-cluster-down:
	lab/cluster.sh down

lab-cluster-status:
	lab/cluster.sh status

demo: release lab lab-status demo-driver

release:
	$(CARGO) build --release -p kuryr

# The managed (v2) Docker plugin: target/plugin/kuryr/{config.json,rootfs}, from the release
# binary and this machine's iptables and libraries; `docker plugin create kuryr target/plugin/kuryr`.
PLUGIN_DIR ?= target/plugin/kuryr
plugin: release
	packaging/plugin/build.sh "$(PLUGIN_DIR)" target/release/kuryr

# The agent image kuryr/agent (kuryr daemon, --net=host) and the node image kuryr/node (Open
# vSwitch and ovn-controller), imported into the local Docker from this machine's files.
images: release
	packaging/images/build.sh target/release/kuryr latest

# The driver demo: start `kuryr daemon` (unless one serves the socket), create a network,
# run two containers on it and ping one from the other.
demo-driver:
	lab/demo.sh

# Fuzzing (libFuzzer through cargo-fuzz, installed on first use): `make fuzz TARGET=docker_call
# FUZZ_SECONDS=600`, or every target in turn without TARGET. New inputs go into
# fuzz/corpus/TARGET/, crashes into fuzz/artifacts/TARGET/; `cargo test -p kuryr-fuzz` (part of
# make test) replays the corpora on stable Rust. cargo-fuzz needs nightly-only compiler flags
# (sanitizer coverage); RUSTC_BOOTSTRAP=1 lets this machine's stable compiler accept them.
FUZZ_TARGETS = docker_call ovsdb_framing ovsdb_update kuryr_conf neutron_reply
FUZZ_SECONDS ?= 300
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(or $(TARGET),$(FUZZ_TARGETS)); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

# The churn soak, longer than make test's (40 lifecycles): container lifecycles of mixed
# shapes with faults at random moments; a leak or an address handed out twice fails it.
# SOAK_SEED=N replays a run.
SOAK_LIFECYCLES ?= 400
soak: lab
	SOAK_LIFECYCLES=$(SOAK_LIFECYCLES) $(CARGO) test -p kuryr --test soak_e2e -- \
		--include-ignored --nocapture

# Northbound client benchmark; needs the lab's NB (make lab).
bench:
	$(CARGO) run --release -p kuryr-ovsdb --example nb-bench

# Install as a package would: the binary, man pages (kuryr.1 and kuryr-COMMAND.1 generated
# from the command definitions, kuryr.conf.5) and bash/zsh/fish completions, under
# $(DESTDIR)$(PREFIX). KURYR_BIN picks an already built binary (default: the release build).
PREFIX ?= /usr/local
KURYR_BIN ?= target/release/kuryr
MANDIR = $(PREFIX)/share/man
BASHDIR = $(PREFIX)/share/bash-completion/completions
ZSHDIR = $(PREFIX)/share/zsh/site-functions
FISHDIR = $(PREFIX)/share/fish/vendor_completions.d
UNITDIR ?= $(PREFIX)/lib/systemd/system

install:
	@if [ ! -x "$(KURYR_BIN)" ]; then $(CARGO) build --release -p kuryr; fi
	install -D -m 0755 "$(KURYR_BIN)" "$(DESTDIR)$(PREFIX)/bin/kuryr"
	install -d "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(MANDIR)/man5" \
		"$(DESTDIR)$(BASHDIR)" "$(DESTDIR)$(ZSHDIR)" "$(DESTDIR)$(FISHDIR)"
	"$(KURYR_BIN)" man --out-dir "$(DESTDIR)$(MANDIR)/man1" >/dev/null
	install -m 0644 docs/man/kuryr.conf.5 "$(DESTDIR)$(MANDIR)/man5/kuryr.conf.5"
	"$(KURYR_BIN)" completions bash > "$(DESTDIR)$(BASHDIR)/kuryr"
	"$(KURYR_BIN)" completions zsh > "$(DESTDIR)$(ZSHDIR)/_kuryr"
	"$(KURYR_BIN)" completions fish > "$(DESTDIR)$(FISHDIR)/kuryr.fish"
	install -d "$(DESTDIR)$(UNITDIR)"
	sed 's|@BINDIR@|$(PREFIX)/bin|' packaging/systemd/kuryr.service > "$(DESTDIR)$(UNITDIR)/kuryr.service"
	install -m 0644 packaging/systemd/kuryr.socket "$(DESTDIR)$(UNITDIR)/kuryr.socket"

# Removes exactly what `make install` put there (the pages by the names it generates).
uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/kuryr" "$(DESTDIR)$(MANDIR)/man1/kuryr.1" \
		"$(DESTDIR)$(MANDIR)/man1"/kuryr-*.1 "$(DESTDIR)$(MANDIR)/man5/kuryr.conf.5" \
		"$(DESTDIR)$(BASHDIR)/kuryr" "$(DESTDIR)$(ZSHDIR)/_kuryr" "$(DESTDIR)$(FISHDIR)/kuryr.fish" \
		"$(DESTDIR)$(UNITDIR)/kuryr.service" "$(DESTDIR)$(UNITDIR)/kuryr.socket"

# A Debian package of what `make install` installs (PREFIX=/usr, units in /lib/systemd/system)
# plus /etc/kuryr/kuryr.conf as a conffile (0600), built with dpkg-deb: target/deb/*.deb.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DEB_ROOT = target/deb/root

deb:
	rm -rf "$(DEB_ROOT)" && mkdir -p "$(DEB_ROOT)/DEBIAN"
	$(MAKE) --no-print-directory install DESTDIR="$(CURDIR)/$(DEB_ROOT)" PREFIX=/usr \
		UNITDIR=/lib/systemd/system KURYR_BIN="$(KURYR_BIN)"
	strip --strip-debug "$(DEB_ROOT)/usr/bin/kuryr"
	install -D -m 0600 packaging/debian/kuryr.conf "$(DEB_ROOT)/etc/kuryr/kuryr.conf"
	sed -e 's|@VERSION@|$(VERSION)|' -e "s|@ARCH@|$$(dpkg --print-architecture)|" \
		packaging/debian/control.in > "$(DEB_ROOT)/DEBIAN/control"
	echo /etc/kuryr/kuryr.conf > "$(DEB_ROOT)/DEBIAN/conffiles"
	dpkg-deb --root-owner-group --build "$(DEB_ROOT)" \
		"target/deb/kuryr_$(VERSION)_$$(dpkg --print-architecture).deb"
