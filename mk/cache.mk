# cache.mk - `make test-cache-race`: the client-side cache's race test at full length (100,000
# rounds of a writer process against a caching reader; `make test` runs 10,000).
CACHE_RACE_ROUNDS ?= 100000

test-cache-race: $(BUILD)/tests/redkv-tests
	$(TEST_ENV) REDKV_CACHE_RACE_ROUNDS=$(CACHE_RACE_ROUNDS) $(BUILD)/tests/redkv-tests \
		--filter 'cache_race/*' $(TEST_ARGS)

.PHONY: test-cache-race
