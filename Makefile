# rt: an OCI container runtime. Run `make help` for the targets.

# bash: `make test` reads PIPESTATUS.
SHELL    := /bin/bash
PREFIX   ?= /usr/local
CARGO    ?= cargo
PYTHON   ?= python3
RT       := $(CURDIR)/target/release/rt
ROOTFS   := $(CURDIR)/spec-examples/rootfs
EXAMPLE  ?= hello
# The CRI test client's gRPC (grpcio from PyPI), in a venv of the project's own.
CRI_VENV := $(CURDIR)/.cache/cri-venv
# Debian packages the tests need (peers to compare against, the rootfs, the benchmark).
DEPS     := runc crun busybox-static python3 criu iproute2 tar containerd umoci libc6-dev docker.io podman time

.PHONY: help build rootfs deps test test-v2 test-systemd demo bench bench-v2 layout soak install clean

help:
	@echo "make build     cargo build --release (target/release/rt, a static containerd-shim-rt-v2)"
	@echo "make rootfs    build the busybox rootfs in spec-examples/rootfs"
	@echo "make deps      apt-get install what the tests need: $(DEPS)"
	@echo "make test      deps + build + rootfs, cargo test, fmt, clippy, test-v2 and test-systemd (all run; fails at the end)"
	@echo "make test-v2   run the vm/payload-* checks in a throwaway cgroup v2 QEMU guest"
	@echo "make test-systemd  the systemd cgroup driver with docker, containerd (ctr, CRI), podman and"
	@echo "               the runtime itself, runc and rt, in a QEMU guest booting systemd (vm/systemd-test.sh)"
	@echo "make demo      run spec-examples/\$$EXAMPLE (default hello) with rt"
	@echo "make bench     compare rt, runc, crun and the floor (bench/cycle.py, ~10 min), the shims (bench/shim.py),"
	@echo "               and the run and quiet cycle in a cgroup v2 guest (make bench-v2, ~5 min)"
	@echo "make soak      leak and drift checks over many containers (bench/soak.py; not in make test):"
	@echo "               SOAK_ARGS='--cycles 1000 --execs 1000 --minutes 10 --fuzz-cases 100000'"
	@echo "make layout    regenerate the hot-path function order rt is linked with (runtime/layout/order.py, ~3 min)"
	@echo "make install   install rt to \$$PREFIX/bin (PREFIX=$(PREFIX))"
	@echo "make clean     cargo clean and remove the rootfs"

# rt and the shim are linked statically (glibc's libc.a): a static binary maps no shared
# libraries and skips the dynamic loader. For the shim, one of which stays resident next
# to every container or pod, that is about 1 MiB less RSS; for rt, peak RSS during create
# 3.5 -> 2.75 MiB and a create-start-delete cycle 16-23% faster (make bench, A/B),
# for 0.85 MB more binary. Only the final links differ, so dependencies are built once.
# runtime/build.rs also has lld lay rt's hot functions out together
# (runtime/layout/symbol-order.txt; `make layout` regenerates it) and pack its relocations.
build:
	$(CARGO) rustc --release -p rt --bin rt -- -C target-feature=+crt-static
	$(CARGO) rustc --release -p containerd-shim-rt-v2 --bin containerd-shim-rt-v2 -- -C target-feature=+crt-static -C strip=symbols

rootfs:
	@spec-examples/build-rootfs.sh

# Install only what is missing; refresh the package lists only when needed.
deps:
	@missing=""; \
	for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq $$missing || { apt-get update -qq && apt-get install -y -qq $$missing; }; \
	fi
	@$(CRI_VENV)/bin/python -c 'import grpc' 2>/dev/null || { \
	  echo "making $(CRI_VENV) (grpcio for the CRI test client)"; \
	  $(PYTHON) -m venv $(CRI_VENV) && $(CRI_VENV)/bin/pip install -q grpcio; }

# Every part runs even when an earlier one fails, and every test binary runs
# (--no-fail-fast), so that one host quirk does not hide the rest; the target then fails,
# naming the parts that failed. Tests that skip say why on lines starting SKIPPED, listed
# again at the end.
test: deps build rootfs
	@failed=""; log=$$(mktemp /tmp/rt-make-test.XXXXXX); \
	RT_BIN=$(RT) RT_TEST_ROOTFS=$(ROOTFS) RT_CRI_PYTHON=$(CRI_VENV)/bin/python \
	  $(CARGO) test --release --workspace --no-fail-fast 2>&1 | tee $$log; \
	[ $${PIPESTATUS[0]} = 0 ] || failed="$$failed cargo-test"; \
	$(CARGO) fmt --all --check || failed="$$failed fmt"; \
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings || failed="$$failed clippy"; \
	v2=$$(mktemp /tmp/rt-make-test-v2.XXXXXX); \
	$(MAKE) test-v2 V2_REPORT=$$v2 || failed="$$failed test-v2"; \
	$(MAKE) test-systemd || failed="$$failed test-systemd"; \
	echo "--- skipped checks (the host lacks what they need):"; \
	grep '^SKIPPED ' $$log || echo "none"; rm -f $$log; \
	[ ! -s $$v2 ] || { echo "--- v2 guest payloads that failed or were rerun:"; cat $$v2; }; rm -f $$v2; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: everything passed"

# cgroup v2 cannot be enabled on the host: vm/guest.sh boots a QEMU guest with
# a cgroup2 /sys/fs/cgroup, a static rt (target/static) and the busybox rootfs,
# and runs the payload there. It installs qemu-system-x86 itself when missing
# and caches the Debian kernel in .cache/vm (RT_VM_CACHE). Every payload runs.
# Each payload's failed checks and vm/guest.sh's own errors are repeated at the end (and
# appended to $(V2_REPORT) when set, for make test's summary), so a log's tail names them.
# A payload whose guest kernel itself failed (guest.sh's status 126: a soft lockup, an RCU
# stall, a panic) runs once more, and the rerun is listed at the end; see README, "cgroup
# v2, tested for real".
test-v2: build rootfs
	@failed=""; out=$$(mktemp /tmp/rt-make-v2.XXXXXX); report=$$(mktemp /tmp/rt-make-v2r.XXXXXX); \
	for p in smoke cgroups criu shim rootless trace; do \
	  vm/guest.sh vm/payload-$$p 2>&1 | tee $$out; rc=$${PIPESTATUS[0]}; \
	  if [ $$rc = 126 ]; then \
	    echo "RERUN $$p: $$(grep -a -m 1 "^vm: the guest's kernel failed" $$out | cut -c 5- | sed 's/; its report:$$//')" | tee -a $$report; \
	    vm/guest.sh vm/payload-$$p 2>&1 | tee $$out; rc=$${PIPESTATUS[0]}; \
	  fi; \
	  [ $$rc = 0 ] && continue; failed="$$failed $$p"; \
	  { echo "$$p (exit status $$rc):"; grep -a -e '^FAIL' -e '^not ok' -e '^vm: ' -e '^  | RIP: 0010' $$out \
	      | grep -v -e '^vm: [a-z].*([0-9.]*s)$$' -e '^vm: booting' | sed 's/^/  /'; } >>$$report; \
	done; \
	echo "--- v2 guest: failed checks and reruns:"; [ -s $$report ] && cat $$report || echo "none"; \
	[ -z "$(V2_REPORT)" ] || cat $$report >>"$(V2_REPORT)"; rm -f $$out $$report; \
	if [ -n "$$failed" ]; then echo "make test-v2: FAILED:$$failed"; exit 1; fi

# The systemd cgroup driver where it matters: vm/sysguest.sh boots a QEMU guest with
# systemd as PID 1 on cgroup v2 only, AppArmor, docker, containerd and podman (a Debian
# image made once by mmdebstrap, cached in .cache/sysguest; both tools installed when
# missing), and vm/payload-systemd/run.sh runs every scenario with runc and with rt; a
# second boot with v1 controllers (systemd.unified_cgroup_hierarchy=0) runs the driver's
# v1 scenario. RT_SYSGUEST_RUNTIMES=rt (or runc), RT_SYSGUEST_SCENARIOS="direct docker
# containerd podman rootless" and RT_SYSGUEST_SCENARIOS_V1=v1 (empty: no second boot) choose.
test-systemd: build rootfs
	@vm/systemd-test.sh

# Runs spec-examples/$(EXAMPLE) with rt under a temporary --root, then removes
# the container, its state and its cgroups (cgroupsPath /rt-examples/<name>).
# The bundle is copied so that the hooks example logs into the temp dir.
demo: build rootfs
	@tmp=$$(mktemp -d /tmp/rt-demo.XXXXXX) || exit 1; id=rt-demo-$$$$; \
	cleanup() { \
	  $(RT) --root $$tmp/state delete --force $$id >/dev/null 2>&1; \
	  for d in /sys/fs/cgroup/*/rt-examples; do \
	    rmdir $$d/$(EXAMPLE) $$d 2>/dev/null; \
	  done; \
	  rm -rf $$tmp; \
	}; \
	trap cleanup EXIT; trap 'exit 130' INT TERM; \
	chmod 755 $$tmp && mkdir -p $$tmp/bundle && \
	sed -e 's#"\.\./rootfs"#"$(ROOTFS)"#' -e "s#/tmp/rt-hooks-demo.log#$$tmp/hooks.log#g" \
	  spec-examples/$(EXAMPLE)/config.json >$$tmp/bundle/config.json || exit 1; \
	echo "+ $(RT) --root $$tmp/state run -b $$tmp/bundle $$id   # spec-examples/$(EXAMPLE)"; \
	$(RT) --root $$tmp/state run -b $$tmp/bundle $$id; rc=$$?; \
	if [ -f $$tmp/hooks.log ]; then echo "--- hooks log:"; cat $$tmp/hooks.log; fi; \
	echo "exit status: $$rc"; exit $$rc

# Regenerate runtime/layout/symbol-order.txt (after a toolchain, Cargo.lock or profile
# change: the list names mangled symbols; a stale one costs memory, never correctness).
layout: rootfs
	$(PYTHON) runtime/layout/order.py

bench: build rootfs
	$(PYTHON) bench/cycle.py
	$(PYTHON) bench/shim.py
	$(MAKE) bench-v2

# The run and the quiet cycle in a throwaway cgroup v2 guest (vm/payload-bench): rt, the
# floor, crun and runc. TCG makes every time slow; the ratios still count.
bench-v2: build rootfs
	vm/payload-bench/prepare.sh
	RT_VM_TIMEOUT=1800 vm/guest.sh vm/payload-bench

# 1000 create/start/delete cycles, 1000 execs with rt and 1000 through the shim, a churn
# of containers under containerd with our shim, then the fuzz tests with many more cases:
# mounts, cgroups, processes, state dirs, fds and the shim's RSS compared before and after.
soak: build rootfs
	$(PYTHON) bench/soak.py $(SOAK_ARGS)

install: build
	install -D -m755 $(RT) $(DESTDIR)$(PREFIX)/bin/rt
	install -D -m755 target/release/containerd-shim-rt-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-rt-v2

clean:
	$(CARGO) clean
	rm -rf spec-examples/rootfs
