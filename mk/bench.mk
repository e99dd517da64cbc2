# bench.mk - `make bench`: redkv side by side with hiredis, redis-benchmark and Litestar's
# delete_all script, in one run (bench/main.c says how to read the table).
#   make bench                      the full run (a few minutes)
#   make bench BENCH_ARGS=--quick   shorter rounds; also --rounds N, --only blocking,parser,...,
#                                   --scan-counts 300,3000,10000 (delete_all sweep beside 1000)
#   make bench HIREDIS=0            build without the hiredis reference even when it is there
# hiredis is Debian's libhiredis-dev; it is looked for only when the bench is built.

BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(BUILD)/bench/redkv-bench
BENCH_ARGS ?=
HIREDIS    ?= auto

# Evaluated in the recipe only (so other targets never probe for hiredis), and once.
bench_hiredis = $(eval bench_hiredis := $(bench_hiredis_probe))$(bench_hiredis)
bench_hiredis_probe = $(if $(filter 0 no,$(HIREDIS)),,$(shell printf '\043include <hiredis/hiredis.h>\nint main(void){redisReader *r = redisReaderCreate(); redisReaderFree(r); return 0;}\n' | \
	$(CC) -x c - -o /dev/null -lhiredis >/dev/null 2>&1 && echo yes))
# The malloc interposer (bench/alloc.c) cannot sit beside the sanitizers' allocator.
BENCH_DEFS = $(if $(filter 1,$(SANITIZE)),-DBENCH_NO_INTERPOSE)

$(BENCH_BIN): $(BENCH_SRC) $(wildcard bench/*.h) $(BUILD)/libredkv.a include/redkv.h include/resp.h store/store.h net/net.h
	@mkdir -p $(dir $@)
	@if [ "$(bench_hiredis)" = yes ]; then echo "bench: hiredis found: building the reference with it"; \
	 else echo "bench: hiredis (libhiredis-dev) not found or disabled: the hiredis columns will say n/a"; fi
	$(CC) $(CPPFLAGS) -Ibench $(BENCH_DEFS) $(if $(bench_hiredis),-DHAVE_HIREDIS) $(CFLAGS) $(LDFLAGS) \
		-o $@ $(BENCH_SRC) $(BUILD)/libredkv.a $(if $(bench_hiredis),-lhiredis) $(LDLIBS_LIB)

bench: $(BENCH_BIN)
	$(BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench
