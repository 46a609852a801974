# qsd — one non-recursive Makefile.
#   make                      build qsd, qsctl, qsbench into build/
#   make check                install missing build deps, build, run the unit and integration tests
#   make demo                 run a local 4-validator cluster (Ctrl-C stops it)
#   make SANITIZE=address,undefined check / make SANITIZE=thread check
#   make CC=clang             build with clang
#   make install PREFIX=/usr DESTDIR=/tmp/pkg

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DESTDIR    ?=
CC         ?= cc
PKG_CONFIG ?= pkg-config
PROTOC_C   ?= protoc-c
B          := build

PKGS      := rocksdb libevent_core libevent_extra libevent_openssl libevent_pthreads \
             libprotobuf-c libssl libcrypto libsodium yaml-0.1 libsystemd
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

CFLAGS ?= -O2 -g
WARN   := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wno-unused-parameter
# RocksDB's version header is C++; take the version from pkg-config instead.
ROCKSDB_VERSION := $(shell $(PKG_CONFIG) --modversion rocksdb 2>/dev/null)
QS_CPPFLAGS := -I. -I$(B)/proto -D_GNU_SOURCE -DQS_VERSION='"$(VERSION)"' \
               -DQS_ROCKSDB_VERSION='"$(ROCKSDB_VERSION)"'
QS_CFLAGS   := -std=c11 -pthread -fPIC $(WARN)
ifneq ($(SANITIZE),)
QS_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
QS_LDFLAGS += -fsanitize=$(SANITIZE)
endif
# Fault shims go into LD_PRELOAD behind the sanitizer runtime, which must
# come first when it is a shared library (gcc); clang links it statically.
ifneq ($(findstring address,$(SANITIZE)),)
SAN_RT := $(filter /%,$(shell $(CC) -print-file-name=libasan.so))
else ifneq ($(findstring thread,$(SANITIZE)),)
SAN_RT := $(filter /%,$(shell $(CC) -print-file-name=libtsan.so))
endif
# Sanitizer reports fail the tests; RocksDB's own races are suppressed.
export TSAN_OPTIONS ?= suppressions=$(abspath tests/tsan.supp) second_deadlock_stack=1
export UBSAN_OPTIONS ?= print_stacktrace=1 halt_on_error=1
ALL_CFLAGS  = $(QS_CPPFLAGS) $(QS_CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(QS_LDFLAGS) $(LDFLAGS)

PROTOS     := $(wildcard proto/quorumstore/v1/*.proto)
PROTO_C    := $(patsubst proto/%.proto,$(B)/proto/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
PROTO_O    := $(PROTO_C:.c=.o)

# Every module source except the program entry points goes into libqs.a,
# which the programs and the tests link.
LIB_SRCS   := $(wildcard core/*.c config/*.c storage/*.c net/*.c daemon/*.c client/*.c)
LIB_SRCS   := $(filter-out daemon/main.c,$(LIB_SRCS))
LIB_O      := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS)) $(PROTO_O)
LIB        := $(B)/libqs.a

PROGS      := $(B)/qsd $(B)/qsctl $(patsubst tools/%.c,$(B)/%,$(filter tools/qsbench.c,$(wildcard tools/*.c)))
TESTS_SRC  := $(wildcard tests/check_*.c)
TESTS      := $(patsubst tests/%.c,$(B)/tests/%,$(TESTS_SRC))
SHIMS_SRC  := $(wildcard tests/shim_*.c)
SHIMS      := $(patsubst tests/%.c,$(B)/tests/%.so,$(SHIMS_SRC))
ALL_O      := $(LIB_O) $(B)/daemon/main.o $(patsubst %.c,$(B)/%.o,$(wildcard tools/*.c))

.PHONY: all check check-unit check-integration check-long demo install lint clean deps bench fuzz
.DEFAULT_GOAL := all

all: $(PROGS)

deps:
	@tools/deps

$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/proto
	$(PROTOC_C) --proto_path=proto --c_out=$(B)/proto $<

# protobuf-c's generated code is not -Wextra clean; compile it without -Werror.
$(B)/proto/%.pb-c.o: $(B)/proto/%.pb-c.c
	$(CC) $(QS_CPPFLAGS) -std=c11 -fPIC $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) \
		$(if $(SANITIZE),-fsanitize=$(SANITIZE)) -c -o $@ $<

$(B)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/tests/%.o: tests/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_O)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/qsd: $(B)/daemon/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/qsctl $(B)/qsbench: $(B)/%: $(B)/tools/%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/tests/check_%: $(B)/tests/check_%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lm

# Fault-injection shims are loaded with LD_PRELOAD; build them without sanitizers.
$(B)/tests/shim_%.so: tests/shim_%.c
	@mkdir -p $(dir $@)
	$(CC) $(QS_CPPFLAGS) -std=c11 -fPIC -shared $(WARN) $(CFLAGS) -o $@ $< -ldl

-include $(ALL_O:.o=.d) $(TESTS:=.d)

check: deps
	@$(MAKE) --no-print-directory check-unit check-integration
	@B=$(B) tools/lint --if-installed

check-unit: $(PROGS) $(TESTS) $(SHIMS)
	@QS_PRELOAD="$(SAN_RT) $(abspath $(B)/tests/shim_sync.so)" tests/run-unit $(TESTS)

check-integration: $(PROGS) $(SHIMS)
	@B=$(B) QS_SAN_RT="$(SAN_RT)" tests/run-integration

# The reliability suite at its full counts (docs/RELIABILITY.md): 200 crash
# cycles, 60 lying-disk power cuts, 60 fault runs, the hostile peers. An hour.
check-long: $(PROGS) $(SHIMS)
	@B=$(B) QS_SAN_RT="$(SAN_RT)" tests/crash/run-long.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) tools/demo

install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	install -m 0755 $(B)/qsd $(DESTDIR)$(SBINDIR)/qsd
	install -m 0755 $(B)/qsctl $(DESTDIR)$(BINDIR)/qsctl
	$(if $(wildcard $(B)/qsbench),install -m 0755 $(B)/qsbench $(DESTDIR)$(BINDIR)/qsbench)
	install -m 0755 tools/mkcluster $(DESTDIR)$(BINDIR)/qs-mkcluster
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/qsd.service >$(DESTDIR)$(UNITDIR)/qsd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/qsd.service
	install -m 0644 systemd/qsd.socket $(DESTDIR)$(UNITDIR)/qsd.socket
	install -d $(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	install -m 0644 systemd/qsd.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/qsd.conf
	install -m 0644 systemd/qsd.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/qsd.conf
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 docs/qsctl.1 $(DESTDIR)$(MANDIR)/man1/qsctl.1
	install -m 0644 docs/qsd.yaml.5 $(DESTDIR)$(MANDIR)/man5/qsd.yaml.5
	install -m 0644 docs/qsd.8 $(DESTDIR)$(MANDIR)/man8/qsd.8
	install -d $(DESTDIR)/etc/qsd
	install -m 0640 docs/qsd.yaml.example $(DESTDIR)/etc/qsd/qsd.yaml.example

# libFuzzer harnesses (fuzz/), built with clang-14 and ASan + UBSan into
# build-fuzz/ from the same sources, then run for FUZZ_SECONDS each (or
# FUZZ_RUNS executions each when set). Any crash, leak or UB fails the run.
#   make fuzz                        60 s per harness
#   make fuzz FUZZ_SECONDS=10        short (CI)
#   make fuzz FUZZ_RUNS=10000000 FUZZ_HARNESSES="peer_frame rpc_request" FUZZ_PARALLEL=2
FZ             := build-fuzz
FUZZ_CC        ?= clang-14
FUZZ_SECONDS   ?= 60
FUZZ_RUNS      ?=
FUZZ_PARALLEL  ?= 1
FUZZ_MAX_LEN   ?=
FUZZ_HARNESSES ?= peer_frame rpc_request config
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS    := $(QS_CPPFLAGS) -std=c11 -pthread -fPIC -O1 -g $(FUZZ_SAN) \
                  -fsanitize=fuzzer-no-link $(PKG_CFLAGS)
FUZZ_LIB_O     := $(patsubst %.c,$(FZ)/%.o,$(LIB_SRCS)) $(patsubst $(B)/%.c,$(FZ)/%.o,$(PROTO_C))
FUZZ_BINS      := $(patsubst %,$(FZ)/fuzz_%,$(FUZZ_HARNESSES))

fuzz:
	@tools/deps fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FZ=$(FZ) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) \
		FUZZ_PARALLEL=$(FUZZ_PARALLEL) FUZZ_MAX_LEN=$(FUZZ_MAX_LEN) fuzz/run $(FUZZ_HARNESSES)

$(FZ)/proto/%.pb-c.o: $(B)/proto/%.pb-c.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FZ)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(FZ)/libqs.a: $(FUZZ_LIB_O)
	@rm -f $@
	$(AR) rcs $@ $^

$(FZ)/fuzz_%: $(FZ)/fuzz/fuzz_%.o $(FZ)/libqs.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

-include $(wildcard $(FZ)/*/*.d)

# Static checks (tools/lint); installs what they need (tools/deps lint).
lint: $(PROGS)
	@B=$(B) tools/lint

# Benchmarks: the disk, RocksDB alone and qsd in one run (docs/BENCHMARKS.md).
bench:
	@tools/deps bench
	@$(MAKE) --no-print-directory all
	@B=$(B) bench/run

clean:
	rm -rf $(B)
.SECONDARY:
