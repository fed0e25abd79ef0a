# smem: one plain GNU Makefile (no autotools, no CMake).
#
#   make            library, tools, examples, test binaries
#   make run        the examples against an auto-started broker
#   make check      the Check suites (SANITIZE=address,undefined or SANITIZE=thread), then
#                   the Python package's tests (python/, tests/python/)
#   make install    PREFIX=/usr/local DESTDIR= (library, headers, tools, smem.pc, man pages)
#   make install-python   the Python package, where $(PYTHON) finds it under PREFIX
#   V=1             show the commands
#
# Sources are found by wildcard: one file per concept in src/, one suite per module in
# tests/check_<module>.c, one program per file in examples/ and tools/.

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wformat=2 -Wvla -Wcast-align
override CFLAGS += -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -Iinclude -Isrc -MMD -MP -pthread
override LDFLAGS += -pthread
# Where auto-start finds smemd once installed ($SMEM_SMEMD overrides it at run time).
SMEMD_PATH_CFLAGS = -DSMEM_SMEMD_PATH='"$(BINDIR)/smemd"'
override CFLAGS += $(SMEMD_PATH_CFLAGS)

# Sanitizers: SANITIZE=address,undefined or SANITIZE=thread. Objects go to their own build
# directory so switching knobs never mixes instrumented and plain objects.
comma := ,
SANITIZE ?=
ifneq ($(SANITIZE),)
override CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=$(SANITIZE)
BUILD := build/san-$(subst $(comma),-,$(SANITIZE))
else
BUILD := build/default
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Feature probes, inline (as zstd's lib/libzstd.mk does).
HAVE_PKGCONFIG := $(shell command -v pkg-config >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_PKGCONFIG),1)
URING_CFLAGS := $(shell pkg-config --cflags liburing 2>/dev/null)
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)
JSON_CFLAGS := $(shell pkg-config --cflags json-c 2>/dev/null)
JSON_LIBS := $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)
SYSTEMD_CFLAGS := $(shell pkg-config --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS := $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
else
URING_LIBS := -luring
CHECK_LIBS := -lcheck -lsubunit -lm -lrt
JSON_LIBS := -ljson-c
SYSTEMD_LIBS := -lsystemd
endif
override CFLAGS += $(URING_CFLAGS)
LIBS := $(URING_LIBS)

LIB_SRCS := $(sort $(wildcard src/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/src/%.o)
LIB_PIC_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/src/%.pic.o)
STATIC_LIB := $(BUILD)/libsmem.a
SONAME := libsmem.so.$(VERSION_MAJOR)
SHARED_LIB := $(BUILD)/libsmem.so.$(VERSION)

# tools/ringbench_*.c, tools/smemctl_*.c and tools/smemd_*.c are parts of ringbench, smemctl
# and smemd (linked into them below), not programs. smemd's parts are the broker's server:
# they also go into $(BUILD)/libsmemd.a (never installed) for the tests and fuzz targets that
# drive the server without its loop; libsmem holds none of it (tests/check-shared-lib).
TOOL_SRCS := $(filter-out tools/ringbench_%.c tools/smemctl_%.c tools/smemd_%.c,$(sort $(wildcard tools/*.c)))
RINGBENCH_PARTS := $(sort $(wildcard tools/ringbench_*.c))
SMEMCTL_PARTS := $(sort $(wildcard tools/smemctl_*.c))
SMEMD_PARTS := $(sort $(wildcard tools/smemd_*.c))
SMEMD_OBJS := $(SMEMD_PARTS:tools/%.c=$(BUILD)/tools/%.o)
SMEMD_LIB := $(BUILD)/libsmemd.a
TOOLS := $(TOOL_SRCS:tools/%.c=$(BUILD)/tools/%)
# The NATS bridge (bridge/): its own library, libsmem-bridge.a, over libsmem and libnats
# (libsmem itself never links libnats), and the daemon smem-bridge, installed with the tools.
# bridge/smem-bridge.c and bridge/bridgebench.c are programs; every other bridge/*.c is the
# library.
BRIDGE_PROGS := smem-bridge bridgebench
BRIDGE_LIB_SRCS := $(filter-out $(BRIDGE_PROGS:%=bridge/%.c),$(sort $(wildcard bridge/*.c)))
BRIDGE_LIB_OBJS := $(BRIDGE_LIB_SRCS:bridge/%.c=$(BUILD)/bridge/%.o)
BRIDGE_LIB := $(BUILD)/libsmem-bridge.a
BRIDGE_TOOLS := $(BUILD)/tools/smem-bridge
BRIDGE_BENCH := $(BUILD)/tools/bridgebench
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)
TEST_SRCS := $(sort $(wildcard tests/check_*.c))
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL_SRCS := $(sort $(wildcard tests/util/*.c))
TEST_UTIL_OBJS := $(TEST_UTIL_SRCS:tests/util/%.c=$(BUILD)/tests/util/%.o)
# C peers of the Python interoperation tests (tests/python/*.c).
PY_HELPER_SRCS := $(sort $(wildcard tests/python/*.c))
PY_HELPERS := $(PY_HELPER_SRCS:tests/python/%.c=$(BUILD)/tests/python/%)
# Long-running harnesses, built like the suites: the broker load (one file) and the crash
# campaign (tests/crash/: the campaign in crash.c, one file per scenario, linked into one).
HARNESS_SRCS := $(sort $(wildcard tests/load/*.c))
CRASH_SRCS := $(sort $(wildcard tests/crash/*.c))
CRASH_OBJS := $(CRASH_SRCS:tests/%.c=$(BUILD)/tests/%.o)
CRASH := $(BUILD)/tests/crash/crash
HARNESSES := $(HARNESS_SRCS:tests/%.c=$(BUILD)/tests/%) $(CRASH)

# The examples in the seed's order (README: SharedArray, BufferReadWrite, CircularBuffer,
# RpcBuffer), then our own demos. Only the ones that exist are run.
RUN_ORDER := shared_array buffer_read_write circular_buffer rpc region_demo topic_frames evloop_uv \
	service_clients
RUN_EXAMPLES := $(foreach e,$(RUN_ORDER),$(filter $(BUILD)/examples/$(e),$(EXAMPLES)))

.PHONY: all lib tools examples tests deps python-deps check check-bridge-long run install uninstall clean bench bench-bridge bench-peers stress fuzz-deps \
	fuzz fuzz-build crash load load-flood valgrind deb deb-deps check-deb install-python uninstall-python
.DEFAULT_GOAL := all

all: deps lib tools examples tests
lib: $(STATIC_LIB) $(SHARED_LIB)
tools: $(TOOLS) $(BRIDGE_TOOLS) $(BRIDGE_BENCH)
examples: $(EXAMPLES)
tests: $(TESTS) $(HARNESSES) $(PY_HELPERS)

# deps: liburing, Check, json-c (smemctl), libsystemd (smemd's sd_notify), pkg-config, groff
# (make check lints the man pages), systemd-socket-activate (make check runs smemd under it:
# package systemd), the NATS C client and server (smem-bridge and its tests), libuv
# (examples/evloop_uv). Installed with apt-get when we are root on Debian or Ubuntu; otherwise
# the exact command to run is printed and the build stops.
DEPS_PKGS := liburing-dev check libjson-c-dev libsystemd-dev systemd pkg-config groff-base libnats-dev nats-server libuv1-dev

# $(call apt_install,STEP,PACKAGES,WHY): as root where apt-get exists, install PACKAGES; else
# say WHY and print the command to run, and fail. One shell line, for a recipe's if branch
# (no commas in the arguments). Every deps step (deps, fuzz-deps, deb-deps, python-deps) goes
# through it.
apt_install = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	echo "$(1): installing $(2)"; \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2); } || \
	{ echo "$(1): apt-get failed; run: apt-get update && apt-get install -y $(2)"; exit 1; }; \
	else echo "$(1): $(3). Run: sudo apt-get update && sudo apt-get install -y $(2)"; exit 1; fi

deps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	command -v groff >/dev/null 2>&1 || missing="$$missing groff-base"; \
	{ [ -f /usr/include/liburing.h ] || pkg-config --exists liburing 2>/dev/null; } || missing="$$missing liburing-dev"; \
	{ [ -f /usr/include/check.h ] || pkg-config --exists check 2>/dev/null; } || missing="$$missing check"; \
	{ [ -f /usr/include/json-c/json.h ] || pkg-config --exists json-c 2>/dev/null; } || missing="$$missing libjson-c-dev"; \
	{ [ -f /usr/include/nats/nats.h ] || pkg-config --exists libnats 2>/dev/null; } || missing="$$missing libnats-dev"; \
	command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || missing="$$missing nats-server"; \
	{ [ -f /usr/include/systemd/sd-daemon.h ] || pkg-config --exists libsystemd 2>/dev/null; } || missing="$$missing libsystemd-dev"; \
	command -v systemd-socket-activate >/dev/null 2>&1 || missing="$$missing systemd"; \
	{ [ -f /usr/include/uv.h ] || pkg-config --exists libuv 2>/dev/null; } || missing="$$missing libuv1-dev"; \
	if [ -n "$$missing" ]; then \
		$(call apt_install,deps,$(DEPS_PKGS),missing$$missing); \
	fi

# The Python package (python/smem) runs on Debian's python3 with numpy and pytest from apt.
# PYTHON is /usr/bin/python3, not whatever python3 comes first on PATH: apt's python3-* packages
# serve only the system interpreter (a pyenv or venv python3 would not see them).
PYTHON ?= /usr/bin/python3
PY_DEPS_PKGS := python3 python3-numpy python3-pytest
python-deps:
	@if ! $(PYTHON) -c 'import numpy, pytest' >/dev/null 2>&1; then \
		$(call apt_install,python-deps,$(PY_DEPS_PKGS),$(PYTHON) lacks numpy or pytest); \
		$(PYTHON) -c 'import numpy, pytest' || { echo "python-deps: $(PYTHON) still lacks numpy or pytest: is it Debian's python3?"; exit 1; }; \
	fi

$(BUILD)/src/%.o: src/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -c -o $@ $<

$(BUILD)/src/%.pic.o: src/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(STATIC_LIB): $(LIB_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_PIC_OBJS) src/libsmem.map
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libsmem.map \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(LIB_PIC_OBJS) $(LIBS)
	$(Q)ln -sf libsmem.so.$(VERSION) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libsmem.so

# Auto-start execs smemd: in the tree, the one just built (recipes that run programs see it;
# a program run by hand finds $(BINDIR)/smemd unless SMEM_SMEMD is set).
export SMEM_SMEMD := $(abspath $(BUILD))/tools/smemd

$(BUILD)/tools/smemd_%.o: tools/smemd_%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(SYSTEMD_CFLAGS) -Itools -c -o $@ $<

$(SMEMD_LIB): $(SMEMD_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/tools/smemd: tools/smemd.c tools/smemd.h $(SMEMD_LIB) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOOL_CFLAGS) $(SYSTEMD_CFLAGS) -Itools $(LDFLAGS) -o $@ $< $(SMEMD_LIB) \
		$(STATIC_LIB) $(LIBS) $(SYSTEMD_LIBS)

# Tools, examples and tests link the static library: they run from the tree without
# LD_LIBRARY_PATH, and tests may reach smem__ internals. Tools print $(VERSION) for --version.
TOOL_CFLAGS := -DSMEM_TOOLS_VERSION='"$(VERSION)"'
$(BUILD)/tools/%: tools/%.c $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOOL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS) -lm

$(BUILD)/tools/ringbench: tools/ringbench.c $(RINGBENCH_PARTS) tools/ringbench.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(TOOL_CFLAGS) $(LDFLAGS) -o $@ tools/ringbench.c $(RINGBENCH_PARTS) \
		$(STATIC_LIB) $(LIBS) -lm

# smemctl builds its documents with json-c (a real JSON library: UTF-8 names round-trip).
$(BUILD)/tools/smemctl: tools/smemctl.c $(SMEMCTL_PARTS) tools/smemctl.h bridge/smem_bridge_shm.h $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Ibridge $(TOOL_CFLAGS) $(JSON_CFLAGS) $(LDFLAGS) -o $@ tools/smemctl.c \
		$(SMEMCTL_PARTS) $(STATIC_LIB) $(LIBS) $(JSON_LIBS) -lm

NATS_LIBS := $(if $(HAVE_PKGCONFIG),$(shell pkg-config --libs libnats 2>/dev/null || echo -lnats),-lnats)
$(BUILD)/bridge/%.o: bridge/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Ibridge -c -o $@ $<

$(BRIDGE_LIB): $(BRIDGE_LIB_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/tools/smem-bridge $(BUILD)/tools/bridgebench: $(BUILD)/tools/%: bridge/%.c $(BRIDGE_LIB) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Ibridge $(TOOL_CFLAGS) $(LDFLAGS) -o $@ $< $(BRIDGE_LIB) $(STATIC_LIB) \
		$(LIBS) $(NATS_LIBS) -lm

$(BUILD)/examples/evloop_uv: LIBS += -luv
$(BUILD)/examples/%: examples/%.c $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

$(BUILD)/tests/python/%: tests/python/%.c $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

$(BUILD)/tests/util/%.o: tests/util/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -c -o $@ $<

$(BUILD)/tests/crash/%.o: tests/crash/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Itests -c -o $@ $<

$(CRASH): $(CRASH_OBJS) $(STATIC_LIB)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CRASH_OBJS) $(STATIC_LIB) $(LIBS)

# check_smemctl and check_bridge parse smemctl's documents back with json-c.
$(BUILD)/tests/check_smemctl $(BUILD)/tests/check_bridge: TEST_LIBS := $(JSON_LIBS)
$(BUILD)/tests/%: tests/%.c $(TEST_UTIL_OBJS) $(SMEMD_LIB) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(JSON_CFLAGS) -Itests -Itools $(LDFLAGS) -o $@ $< \
		$(TEST_UTIL_OBJS) $(SMEMD_LIB) $(STATIC_LIB) $(LIBS) $(SYSTEMD_LIBS) $(TEST_LIBS) $(CHECK_LIBS)

# Every suite runs against a broker of its own (SMEM_BROKER in a private directory), started
# by the library's auto-start and stopped afterwards, so tests never touch a user's broker.
# The tools are built first: some tests exec smemd, smemctl or ringbench. check-layers reads
# the RPC objects and fails if their calls or includes go round in a circle.
# tests/check-systemd runs smemd under systemd-socket-activate, tests/check-fdstore restarts it
# with a stand-in service manager's fd store (Python, standard library only).
# The Python tests load libsmem.so into the interpreter, so they run on plain builds only (an
# instrumented library would need the sanitizer runtime preloaded into python3).
check: all $(if $(SANITIZE),,python-deps)
ifeq ($(SANITIZE),)
	@./tests/check-shared-lib $(BUILD)
endif
	@./tests/check-man $(BUILD)
	@./tests/check-layers $(BUILD)
	@$(PYTHON) ./tests/check-systemd $(BUILD)
	@$(PYTHON) ./tests/check-fdstore $(BUILD)
	@BUILD=$(BUILD) ./tests/run-suites $(TESTS)
ifeq ($(SANITIZE),)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) ./tests/python/run-pytest
endif

# The bridge's long cases on top of check_bridge: JetStream exactly once across the loss of a
# server in a three-server cluster (leader elections take ~15 s; make check has the plain
# cluster failover), and across 60 kill -9 of an exporting bridge (make check has 6).
check-bridge-long: all
	@SMEM_BRIDGE_LONG=1 BUILD=$(BUILD) ./tests/run-suites $(BUILD)/tests/check_bridge

# The ring's exactly-once stress at length: 4 writer and 4 reader processes, then threads,
# each moving RING_STRESS_MSGS messages (default 10^8; about 4 minutes on 2 cores).
RING_STRESS_MSGS ?= 100000000
stress: all
	@RING_STRESS_MSGS=$(RING_STRESS_MSGS) CK_RUN_CASE=exactly_once SUITE_TIMEOUT=86400 \
		BUILD=$(BUILD) ./tests/run-suites $(BUILD)/tests/check_ring_stress

# Fuzzing (libFuzzer, clang): one target per tests/fuzz/fuzz_<name>.c, the library built with
# coverage and ASan/UBSan in build/fuzz. `make fuzz` runs each target FUZZ_SECONDS over its
# committed seeds (tests/fuzz/corpus/<name>/); new inputs go to build/fuzz/corpus/<name>/,
# crashes to build/fuzz/artifacts/. See docs/RELIABILITY.md.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_DIR := build/fuzz
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:src/%.c=$(FUZZ_DIR)/src/%.o) $(SMEMD_PARTS:tools/%.c=$(FUZZ_DIR)/tools/%.o)
FUZZ_CFLAGS := -O1 -g -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -Iinclude -Isrc -Itools -MMD -MP -pthread \
	$(URING_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -Wno-cast-align $(SMEMD_PATH_CFLAGS)
# clang's -Wcast-align warns on x86 where gcc's does not (alignment is checked by UBSan here).
.SECONDARY: $(FUZZ_LIB_OBJS)

$(FUZZ_DIR)/src/%.o: src/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fvisibility=hidden -c -o $@ $<

$(FUZZ_DIR)/tools/%.o: tools/%.c | deps
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) $(LIBS) $(SYSTEMD_LIBS)

# clang and its libFuzzer runtime, installed like `deps` (apt-get as root), else the command.
fuzz-deps:
	@if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' | \
		$(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then \
		$(call apt_install,fuzz-deps,clang libclang-rt-dev,$(FUZZ_CC) cannot build libFuzzer targets); \
	fi

$(FUZZ_LIB_OBJS) $(FUZZ_BINS): | fuzz-deps
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@./tests/fuzz/run-fuzz $(FUZZ_SECONDS) $(FUZZ_BINS)

# The crash campaign (tests/crash/): CRASH_TRIALS trials of processes killed with
# SIGKILL at random points, against a broker of its own. CRASH_SEED=N replays a campaign.
CRASH_TRIALS ?= 2000
CRASH_SEED ?= 0
crash: all
	@$(BUILD)/tests/crash/crash -t $(CRASH_TRIALS) $(if $(filter-out 0,$(CRASH_SEED)),-s $(CRASH_SEED))

# Broker load (tests/load/load.c): 1000 connections, 10000 names, churn from 16 processes,
# the broker's VmRSS before and after, per-uid limits (as root).
load: all
	@BUILD=$(BUILD) $(BUILD)/tests/load/load

# The flood scenario alone (part of `make load`): one uid floods connections, holds and
# create/unlink churn at a broker with the default per-uid caps while another uid's
# create/open latency (p50/p99) and the broker's fd count are measured. Needs root.
LOAD_FLOOD_ITERS ?= 2000
load-flood: all
	@BUILD=$(BUILD) $(BUILD)/tests/load/load -F -i $(LOAD_FLOOD_ITERS)

# Memcheck over the suites: every process under valgrind, a log each in $(BUILD)/valgrind/.
# VALGRIND_SUITES=check_ring limits it (default: all; about 8 minutes on 2 cores).
VALGRIND_SUITES ?= $(notdir $(TESTS))
valgrind: all
	@BUILD=$(BUILD) ./tests/valgrind/run-valgrind $(addprefix $(BUILD)/tests/,$(VALGRIND_SUITES))

# The C examples, then the same four in Python (python3 -m smem.examples) over libsmem.so.
run: all python-deps
	@BUILD=$(BUILD) ./examples/run-examples $(RUN_EXAMPLES)
	@PYTHONPATH=python SMEM_LIBRARY=$(abspath $(BUILD))/libsmem.so $(PYTHON) -m smem.examples

# Benchmarks (bench/run): the seed's chart matrix, the ring and RPC comparisons and the
# latency table, with baselines from the same runs; JSON, a markdown summary and PNG charts
# in bench/results/. QUICK=1: a short run. bench-peers installs (apt-get as root, else prints
# the command) and builds the Boost.Interprocess and ZeroMQ peers.
QUICK ?= 0
bench: all
	@BUILD=$(BUILD) QUICK=$(QUICK) ./bench/run

# The NATS bridge against NATS alone (tools/bridgebench starts its own nats-server): buffered
# and send-asap publishes, JSON in bench/results/.
BENCH_DATE ?= $(shell date -u +%Y-%m-%d)
bench-bridge: tools
	@$(BUILD)/tools/bridgebench --json bench/results/$(BENCH_DATE)-bridge-buffered.json
	@$(BUILD)/tools/bridgebench --send-asap --json bench/results/$(BENCH_DATE)-bridge-send-asap.json

bench-peers: all
	@BUILD=$(BUILD) ./bench/run peers

# install needs only what it installs (the package build runs it without Check). The systemd
# units go to $(SYSTEMDUNITDIR), their ExecStart pointing at $(BINDIR)/smemd; systemd reads
# /etc/systemd/system and /usr/lib/systemd/system, so a /usr/local install needs
# SYSTEMDUNITDIR=/etc/systemd/system (or a link) to be found.
install: lib tools
	install -d $(DESTDIR)$(INCLUDEDIR)/smem $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/smem.h $(DESTDIR)$(INCLUDEDIR)/smem.h
	install -m 644 include/smem/*.h $(DESTDIR)$(INCLUDEDIR)/smem/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/libsmem.a
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/libsmem.so.$(VERSION)
	ln -sf libsmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsmem.so
	install -m 755 $(TOOLS) $(BRIDGE_TOOLS) $(BRIDGE_BENCH) $(DESTDIR)$(BINDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' smem.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/smem.pc
	for s in 1 3 7 8; do \
		install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 644 man/man$$s/*.$$s $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 644 systemd/smemd.socket $(DESTDIR)$(SYSTEMDUNITDIR)/smemd.socket
	sed -e 's|/usr/bin/smemd|$(BINDIR)/smemd|' systemd/smemd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/smemd.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/smemd.service

# The Python package (python/smem) where $(PYTHON) finds it under PREFIX, and the path of the
# installed libsmem for it. Apart from install: the Debian packages carry the C library only.
# Where $(PYTHON) looks for packages under PREFIX: PREFIX/lib/python3.X/dist-packages on Debian
# (on sys.path for /usr/local and /usr), site-packages on other builds of Python.
PYTHON_SITEDIR ?= $(shell $(PYTHON) -c "import sys; v = '%d.%d' % sys.version_info[:2]; \
	d = 'dist-packages' if any(p.endswith('dist-packages') for p in sys.path) else 'site-packages'; \
	print('$(PREFIX)/lib/python%s/%s' % (v, d))" 2>/dev/null)
PY_PKG_FILES := $(sort $(wildcard python/smem/*.py))
PY_EXAMPLE_FILES := $(sort $(wildcard python/smem/examples/*.py))

install-python:
	@[ -n "$(PYTHON_SITEDIR)" ] || { echo "install-python: cannot ask $(PYTHON) for its site directory; set PYTHON_SITEDIR"; exit 1; }
	install -d $(DESTDIR)$(PYTHON_SITEDIR)/smem/examples
	install -m 644 $(PY_PKG_FILES) python/smem/py.typed $(DESTDIR)$(PYTHON_SITEDIR)/smem/
	install -m 644 $(PY_EXAMPLE_FILES) $(DESTDIR)$(PYTHON_SITEDIR)/smem/examples/
	echo 'LIBRARY = "$(LIBDIR)/libsmem.so.$(VERSION_MAJOR)"  # written by make install-python' \
		> $(DESTDIR)$(PYTHON_SITEDIR)/smem/_paths.py

uninstall-python:
	[ -z "$(PYTHON_SITEDIR)" ] || rm -rf $(DESTDIR)$(PYTHON_SITEDIR)/smem

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/smem.h $(DESTDIR)$(LIBDIR)/libsmem.a \
		$(DESTDIR)$(LIBDIR)/libsmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libsmem.so $(DESTDIR)$(PKGCONFIGDIR)/smem.pc \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(TOOLS) $(BRIDGE_TOOLS) $(BRIDGE_BENCH))) \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/%,$(wildcard man/man*/*.[0-9])) \
		$(DESTDIR)$(SYSTEMDUNITDIR)/smemd.socket $(DESTDIR)$(SYSTEMDUNITDIR)/smemd.service
	rm -rf $(DESTDIR)$(INCLUDEDIR)/smem

# Debian packages (debian/): libsmem0, libsmem-dev and smem-tools, built with
# dpkg-buildpackage from a copy of the tracked files in build/deb/ (so nothing is written
# beside the source tree); the .debs end up in build/deb/. deb-deps installs the tools
# (apt-get as root, else prints the command). check-deb runs lintian over them, unpacks them
# into a scratch root and builds and runs a program against them with pkg-config
# (tests/check-deb).
DEB_DIR := build/deb
DEB_DEPS_PKGS := debhelper dpkg-dev man-db lintian $(DEPS_PKGS)
deb-deps: deps
	@if ! command -v dpkg-buildpackage >/dev/null 2>&1 || ! command -v dh >/dev/null 2>&1 || \
	    ! command -v man >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1; then \
		$(call apt_install,deb-deps,$(DEB_DEPS_PKGS),missing dpkg-buildpackage or debhelper or man or lintian); \
	fi

deb: deb-deps
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/smem-$(VERSION)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(DEB_DIR)/smem-$(VERSION); \
	else \
		tar --exclude=./build -cf - . | tar -xf - -C $(DEB_DIR)/smem-$(VERSION); \
	fi
	@cd $(DEB_DIR)/smem-$(VERSION) && dpkg-buildpackage -us -uc -b > ../build.log 2>&1 \
		|| { tail -n 40 ../build.log; echo "deb: dpkg-buildpackage failed (log: $(DEB_DIR)/build.log)"; exit 1; }
	@ls $(DEB_DIR)/*.deb

check-deb: deb
	@./tests/check-deb $(DEB_DIR) $(VERSION)

clean:
	rm -rf build

-include $(wildcard $(BUILD)/src/*.d $(BUILD)/bridge/*.d $(BUILD)/tools/*.d $(BUILD)/examples/*.d $(BUILD)/tests/*.d $(BUILD)/tests/util/*.d $(BUILD)/tests/crash/*.d $(BUILD)/tests/python/*.d)
-include $(wildcard $(FUZZ_DIR)/src/*.d $(FUZZ_DIR)/tools/*.d $(FUZZ_DIR)/*.d)
