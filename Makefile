# redkv - see README.md. C99, POSIX. `make`, `make test`, `make demo`, `make bench`, ...
CC      ?= cc
OPT     ?= -O2
WERROR  ?= -Werror
CSTD    ?= -std=c99
PREFIX  ?= /usr/local
BUILD   ?= build
VERSION := $(shell sed -n 's/^#define REDKV_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' include/redkv.h | paste -sd.)
SONAME  := libredkv.so.0

# Small-target switches (see README, "Embedded"): e.g. make DEFS=-DREDKV_NO_THREADS
DEFS    ?=
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Iresp -Inet -Istore $(DEFS)
CFLAGS  += $(CSTD) $(OPT) -g -gdwarf-4 -Wall -Wextra -Wshadow -Wvla $(WERROR) -fvisibility=hidden
LDLIBS_LIB := $(if $(findstring REDKV_NO_THREADS,$(DEFS)),,-lpthread)

ifeq ($(SANITIZE),1)
BUILD   := build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# TLS=mbedtls or TLS=openssl (mk/tls.mk): sets BUILD, so it comes before the rules.
include mk/tls.mk

LIB_SRC := $(wildcard resp/*.c) $(wildcard net/*.c) $(wildcard store/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
PIC_OBJ := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
CLI_SRC := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/*.c)
# The event-loop examples need their loop's library (the library itself never does).
LOOP_EXAMPLES := $(patsubst %,$(BUILD)/examples/%,libuv_loop libevent_loop libev_loop)
EXAMPLES := $(filter-out $(LOOP_EXAMPLES),$(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c)))

all: $(BUILD)/libredkv.a $(BUILD)/libredkv.so $(if $(CLI_SRC),$(BUILD)/redkv) $(EXAMPLES) $(LOOP_EXAMPLES)

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h resp/*.h net/*.h store/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: %.c $(wildcard include/*.h resp/*.h net/*.h store/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/libredkv.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libredkv.so: $(PIC_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB)

$(BUILD)/redkv: $(CLI_SRC) $(BUILD)/libredkv.a include/redkv.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_SRC) $(BUILD)/libredkv.a $(LDLIBS_LIB)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libredkv.a include/redkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libredkv.a $(LDLIBS_LIB)

# Each loop example is built when its library is installed, else skipped with a note (the
# adapter tests then fail, saying so). The probe runs only while the example is missing.
LOOP_HEADER_libuv_loop    := uv.h
LOOP_LIBS_libuv_loop      := -luv
LOOP_HEADER_libevent_loop := event2/event.h
LOOP_LIBS_libevent_loop   := -levent
LOOP_HEADER_libev_loop    := ev.h
LOOP_LIBS_libev_loop      := -lev
LOOP_CC_CMD = $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libredkv.a $(LOOP_LIBS_$*) $(LDLIBS_LIB)

$(LOOP_EXAMPLES): $(BUILD)/examples/%: examples/%.c examples/loop_demo.h $(BUILD)/libredkv.a \
		include/redkv.h $(wildcard include/redkv/adapters/*.h)
	@mkdir -p $(dir $@)
	@if printf '#include <%s>\nint main(void) { return 0; }\n' '$(LOOP_HEADER_$*)' | \
		$(CC) $(LDFLAGS) -x c - -o $@.probe $(LOOP_LIBS_$*) >/dev/null 2>&1; then rm -f $@.probe; \
	else rm -f $@.probe $@; echo "$@: skipped, $(LOOP_HEADER_$*) / $(LOOP_LIBS_$*) not installed"; exit 0; fi; \
	echo '$(LOOP_CC_CMD)'; $(LOOP_CC_CMD)

# One Criterion binary holds every test, so `make test` ends with one summary line.
$(BUILD)/tests/redkv-tests: $(TEST_SRC) $(wildcard tests/*.h) $(BUILD)/libredkv.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -Wno-missing-field-initializers $(LDFLAGS) -o $@ \
		$(TEST_SRC) $(BUILD)/libredkv.a -lcriterion $(LDLIBS_LIB)

# The tests find the built tools through these.
TEST_ENV = REDKV_BUILD=$(CURDIR)/$(BUILD) REDKV_SRC=$(CURDIR) REDKV_CC="$(CC)" REDKV_LDFLAGS="$(LDFLAGS)"
TEST_JOBS ?= 2
TEST_ARGS ?=

# Each test runs in a child process, and a child's valgrind or LeakSanitizer report does not
# change the exit status: the reports go to files, one per process, and any report fails
# the run. tests/*.supp hide only the few bytes Criterion's own runner leaks.
CHECK_REPORTS = set -- $$(find $(BUILD)/tests/reports -type f -size +0); \
	if [ $$\# -gt 0 ]; then cat "$$@" >&2; echo "$$\# process(es) reported errors" >&2; exit 1; fi

test: all $(BUILD)/tests/redkv-tests $(BUILD)/amalgamation/redkv.c
	@rm -rf $(BUILD)/tests/reports && mkdir -p $(BUILD)/tests/reports
ifeq ($(VALGRIND),1)
	$(TEST_ENV) REDKV_VALGRIND=1 valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --trace-children=yes \
		--trace-children-skip='*redis-server*,*redis-cli*,/bin/*,/usr/bin/*' \
		--suppressions=$(CURDIR)/tests/valgrind.supp --log-file=$(CURDIR)/$(BUILD)/tests/reports/valgrind.%p \
		$(BUILD)/tests/redkv-tests --jobs $(TEST_JOBS) $(TEST_ARGS); \
	rc=$$?; $(CHECK_REPORTS); exit $$rc
else ifeq ($(SANITIZE),1)
	$(TEST_ENV) LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
		ASAN_OPTIONS=log_path=$(CURDIR)/$(BUILD)/tests/reports/asan:fast_unwind_on_malloc=0 \
		$(BUILD)/tests/redkv-tests --jobs $(TEST_JOBS) $(TEST_ARGS); \
	rc=$$?; $(CHECK_REPORTS); exit $$rc
else
	$(TEST_ENV) $(BUILD)/tests/redkv-tests --jobs $(TEST_JOBS) $(TEST_ARGS)
endif

clean:
	rm -rf build build-san build-*

.PHONY: all test clean

# Further targets live beside what they build (fuzz, bench, demo, install, embedded).
-include $(wildcard mk/*.mk)

# One C file of the whole library, with its public headers (see README, "Using it from").
amalgamation: $(BUILD)/amalgamation/redkv.c
$(BUILD)/amalgamation/redkv.c: $(LIB_SRC) $(wildcard include/*.h resp/*.h net/*.h store/*.h) scripts/amalgamate.sh
	sh scripts/amalgamate.sh $(BUILD)/amalgamation $(LIB_SRC)
.PHONY: amalgamation
