# fuzz.mk - libFuzzer targets, built with clang whatever CC is (included by the Makefile).
#
#   make fuzz                    build every target, run each for FUZZ_SECONDS (default 10)
#   make fuzz FUZZ_TARGETS=resp  just one
#   make fuzz-regress            replay the stored inputs in fuzz/regress/<target>/
#
# Target <t> is fuzz/fuzz_<t>.c, seeded from fuzz/corpus/<t>/. It runs on a scratch copy of
# that corpus, build/fuzz/corpus-<t>, which grows from run to run without touching the
# committed seeds; crashes land in build/fuzz/crash-<t>-*. Add a crash worth keeping to
# fuzz/regress/<t>/: `make test` replays fuzz/regress/resp/ (tests/test_resp.c).
#
# Adding a target is one line, e.g. for fuzz/fuzz_url.c:
#   FUZZ_TARGETS += url
# It links the whole library ($(LIB_SRC)) unless FUZZ_SRC_<t> names fewer sources, as the
# resp target does below (the codec alone).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 10
FUZZ_DIR     := build/fuzz
FUZZ_CFLAGS  ?= -std=c99 -g -O1 -Wall -Wextra -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_ARGS    ?=

FUZZ_TARGETS += resp
FUZZ_SRC_resp := $(wildcard resp/*.c)
FUZZ_TARGETS += url

FUZZ_HEADERS := $(wildcard include/*.h resp/*.h net/*.h store/*.h)

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(LIB_SRC) $(FUZZ_HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $< $(or $(FUZZ_SRC_$*),$(LIB_SRC)) -lpthread

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

# libFuzzer writes new inputs to the first directory only; the seeds and the stored
# regressions are read from the others.
fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus-$*
	@if [ -d fuzz/corpus/$* ]; then cp -R fuzz/corpus/$*/. $(FUZZ_DIR)/corpus-$*/; fi
	$< -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/crash-$*- \
		$(if $(wildcard fuzz/$*.dict),-dict=fuzz/$*.dict) $(FUZZ_ARGS) \
		$(FUZZ_DIR)/corpus-$* $(wildcard fuzz/corpus/$* fuzz/regress/$*)

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz-regress-%: $(FUZZ_DIR)/fuzz_%
	@set -- $(filter-out %/.gitkeep,$(wildcard fuzz/regress/$*/*)); \
	if [ $$# -gt 0 ]; then echo "$< $$*"; $< "$$@"; else echo "fuzz-regress: no inputs for $*"; fi

fuzz-regress: $(FUZZ_TARGETS:%=fuzz-regress-%)

# tests/test_resp.c includes fuzz/fuzz_resp.c (to replay fuzz/regress/resp/), and
# tests/test_hostile.c fuzz/fuzz_url.c (to replay fuzz/corpus/url/).
$(BUILD)/tests/redkv-tests: fuzz/fuzz_resp.c fuzz/fuzz_url.c

.PHONY: fuzz fuzz-build fuzz-regress
