# embedded.mk - small targets: a static CLI (musl), code size, a cross build for aarch64
# run under qemu, the self-test, and a pedantic C99 build. See doc/EMBEDDED.md.
#
#   make static       build/static/redkv: the CLI linked statically against musl
#   make static-test  ... and run against a private redis-server
#   make size         text bytes of libredkv.a at -Os, with and without threads, beside hiredis
#   make selftest     the self-test against a private redis-server, native, threads and none
#   make cross-test   library, CLI and self-test for aarch64 (static), run under qemu-aarch64
#   make pedantic     the library and self-test with -std=c99 -pedantic -Werror, gcc and clang
#
# Each builds in its own directory under $(BUILD)/ (through a sub-make with BUILD=...), so
# the main build is never touched and `make clean` removes them all.

MUSL_CC        ?= musl-gcc
CROSS_CC       ?= aarch64-linux-gnu-gcc
CROSS_AR       ?= aarch64-linux-gnu-ar
QEMU_AARCH64   ?= qemu-aarch64
STATIC_OPT     ?= -Os -ffunction-sections -fdata-sections
STATIC_LDFLAGS ?= -static -Wl,--gc-sections
# Goals in text bytes: codec + net + store <= 32 KiB (the embedded issue's budget); with the
# Redis Cluster layer, which a build can leave out, <= 36 KiB.
SIZE_LIMIT     ?= 0
SIZE_LIMIT_CORE ?= 32768
# Every optional part off but threads (the size report shows both columns).
MINIMAL_DEFS    := -DREDKV_NO_CLUSTER -DREDKV_NO_TLS -DREDKV_NO_SENTINEL -DREDKV_NO_CACHE
HIREDIS_A      ?= /usr/lib/x86_64-linux-gnu/libhiredis.a

# The self-test: one program, public header only (tests/*.c belong to Criterion).
$(BUILD)/selftest/selftest: tests/selftest/selftest.c $(BUILD)/libredkv.a include/redkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libredkv.a $(LDLIBS_LIB)

# A sub-make building into another directory; the named variables override the caller's.
EMB_MAKE = $(MAKE) --no-print-directory

# ---- make static -------------------------------------------------------------------------

STATIC_DIR := $(BUILD)/static

static:
	@test -n "$(CLI_SRC)" || { echo "make static: no cli/*.c yet" >&2; exit 2; }
	@command -v $(MUSL_CC) >/dev/null || { echo "make static: $(MUSL_CC) not found (apt-get install musl-tools)" >&2; exit 2; }
	+$(EMB_MAKE) BUILD=$(STATIC_DIR) CC=$(MUSL_CC) OPT='$(STATIC_OPT)' LDFLAGS='$(STATIC_LDFLAGS)' \
		DEFS='$(DEFS)' $(STATIC_DIR)/redkv
	@file $(STATIC_DIR)/redkv
	@file $(STATIC_DIR)/redkv | grep -q 'statically linked' || \
		{ echo "make static: $(STATIC_DIR)/redkv is not statically linked" >&2; exit 1; }
	@size $(STATIC_DIR)/redkv

# ... and tried against a private redis-server.
static-test: static
	scripts/cross-test.sh --cli $(STATIC_DIR)/redkv

# ---- make size ---------------------------------------------------------------------------

SIZE_DIR    := $(BUILD)/size-$(notdir $(firstword $(CC)))
SIZE_NT_DIR := $(SIZE_DIR)-nothreads

size:
	+$(EMB_MAKE) BUILD=$(SIZE_DIR) OPT=-Os DEFS= $(SIZE_DIR)/libredkv.a
	+$(EMB_MAKE) BUILD=$(SIZE_NT_DIR) OPT=-Os DEFS=-DREDKV_NO_THREADS $(SIZE_NT_DIR)/libredkv.a
	@echo "libredkv.a at -Os with $$($(CC) --version | head -n 1):"
	@sh scripts/size-report.sh $(SIZE_LIMIT) $(SIZE_DIR) $(SIZE_NT_DIR) \
		$(HIREDIS_A)
	+$(EMB_MAKE) BUILD=$(SIZE_DIR)-nocluster OPT=-Os DEFS='$(MINIMAL_DEFS)' $(SIZE_DIR)-nocluster/libredkv.a
	+$(EMB_MAKE) BUILD=$(SIZE_NT_DIR)-nocluster OPT=-Os DEFS='-DREDKV_NO_THREADS $(MINIMAL_DEFS)' \
		$(SIZE_NT_DIR)-nocluster/libredkv.a
	@echo
	@echo "Codec, net and store alone ($(MINIMAL_DEFS)); the minimal build has no threads either:"
	@sh scripts/size-report.sh $(SIZE_LIMIT_CORE) $(SIZE_DIR)-nocluster $(SIZE_NT_DIR)-nocluster

# ---- make selftest -----------------------------------------------------------------------

NT_DIR := $(BUILD)/nothreads

# The library must not need pthread at all when built without threads.
define emb_no_pthread
	@if nm -u $(1) | grep -q pthread_; then \
		echo "$(1): built with REDKV_NO_THREADS but uses pthread:" >&2; nm -u $(1) | grep pthread_ >&2; \
		exit 1; else echo "$(1): no pthread symbols"; fi
endef

selftest: $(BUILD)/selftest/selftest
	+$(EMB_MAKE) BUILD=$(NT_DIR) DEFS=-DREDKV_NO_THREADS $(NT_DIR)/selftest/selftest
	$(call emb_no_pthread,$(NT_DIR)/libredkv.a)
	scripts/cross-test.sh --selftest $(BUILD)/selftest/selftest --selftest $(NT_DIR)/selftest/selftest

# ---- make cross-test ---------------------------------------------------------------------

CROSS_DIR    := $(BUILD)/aarch64
CROSS_NT_DIR := $(BUILD)/aarch64-nothreads

cross-test:
	@command -v $(CROSS_CC) >/dev/null || { echo "make cross-test: $(CROSS_CC) not found (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 2; }
	@command -v $(QEMU_AARCH64) >/dev/null || { echo "make cross-test: $(QEMU_AARCH64) not found (apt-get install qemu-user)" >&2; exit 2; }
	+$(EMB_MAKE) BUILD=$(CROSS_DIR) CC=$(CROSS_CC) AR=$(CROSS_AR) LDFLAGS=-static DEFS= \
		$(CROSS_DIR)/libredkv.a $(CROSS_DIR)/selftest/selftest $(if $(CLI_SRC),$(CROSS_DIR)/redkv)
	+$(EMB_MAKE) BUILD=$(CROSS_NT_DIR) CC=$(CROSS_CC) AR=$(CROSS_AR) LDFLAGS=-static DEFS=-DREDKV_NO_THREADS \
		$(CROSS_NT_DIR)/selftest/selftest
	+$(EMB_MAKE) BUILD=$(NT_DIR) DEFS=-DREDKV_NO_THREADS $(NT_DIR)/selftest/selftest
	$(call emb_no_pthread,$(NT_DIR)/libredkv.a)
	@file $(CROSS_DIR)/selftest/selftest
	QEMU="$(QEMU_AARCH64)" scripts/cross-test.sh \
		--selftest "$(QEMU_AARCH64) $(CROSS_DIR)/selftest/selftest" \
		--selftest "$(QEMU_AARCH64) $(CROSS_NT_DIR)/selftest/selftest" \
		--selftest $(NT_DIR)/selftest/selftest \
		$(if $(CLI_SRC),--cli "$(QEMU_AARCH64) $(CROSS_DIR)/redkv")

# ---- make pedantic -----------------------------------------------------------------------

# The library, the self-test and the CLI in strict C99, with each compiler, threads and
# none: no extensions, no VLAs (-Wvla is in CFLAGS); gcc also checks for alloca.
PEDANTIC_gcc   := -std=c99 -pedantic -Walloca
PEDANTIC_clang := -std=c99 -pedantic

define emb_pedantic
	+$(EMB_MAKE) CC=$(1) BUILD=$(BUILD)/pedantic-$(1)$(2) CSTD='$(PEDANTIC_$(1))' WERROR=-Werror \
		DEFS='$(if $(2),-DREDKV_NO_THREADS)' $(BUILD)/pedantic-$(1)$(2)/libredkv.a \
		$(BUILD)/pedantic-$(1)$(2)/selftest/selftest $(if $(CLI_SRC),$(BUILD)/pedantic-$(1)$(2)/redkv)
endef

pedantic:
	$(call emb_pedantic,gcc,)
	$(call emb_pedantic,gcc,-nothreads)
	$(call emb_pedantic,clang,)
	$(call emb_pedantic,clang,-nothreads)
	@echo "pedantic: library, self-test and CLI clean with gcc and clang, -std=c99 -pedantic -Werror"

.PHONY: static static-test size selftest cross-test pedantic
