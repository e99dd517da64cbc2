# make test-tsan: ThreadSanitizer over the library's threaded paths. The library, a plain
# threaded test driver (tests/soak/threads.c: Criterion's runner cannot start under TSan) and
# the soak are built with -fsanitize=thread into $(TSAN_BUILD); the driver runs, then the
# cache's (tests/soak/cache.c: blocking threads and an event loop on one cached client), then
# a short soak (8 blocking threads and an async loop on one store, under restarts and
# stalls). Any TSan report, in any process, fails the target.
TSAN_BUILD         ?= build-tsan
TSAN_SOAK_SECONDS  ?= 20
TSAN_FLAGS         := -fsanitize=thread -fno-omit-frame-pointer
TSAN_REPORTS       := $(CURDIR)/$(TSAN_BUILD)/reports
TSAN_RUN_ENV = TSAN_OPTIONS=halt_on_error=0:exitcode=66:log_path=$(TSAN_REPORTS)/tsan

$(BUILD)/threads: tests/soak/threads.c tests/fixture.c tests/fixture.h $(BUILD)/libredkv.a include/redkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ tests/soak/threads.c tests/fixture.c \
		$(BUILD)/libredkv.a -lpthread

$(BUILD)/cache-threads: tests/soak/cache.c tests/fixture.c tests/fixture.h $(BUILD)/libredkv.a include/redkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ tests/soak/cache.c tests/fixture.c \
		$(BUILD)/libredkv.a -lpthread

test-tsan:
	CFLAGS="$(TSAN_FLAGS)" LDFLAGS="-fsanitize=thread" $(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) \
		$(TSAN_BUILD)/threads $(TSAN_BUILD)/cache-threads $(TSAN_BUILD)/soak
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	$(TSAN_RUN_ENV) $(TSAN_BUILD)/threads; \
	rc=$$?; $(TSAN_RUN_ENV) $(TSAN_BUILD)/cache-threads || rc=1; \
	$(TSAN_RUN_ENV) $(TSAN_BUILD)/soak --seconds $(TSAN_SOAK_SECONDS) --rss-slack-mib 512 || rc=1; \
	set -- $$(find $(TSAN_REPORTS) -type f -size +0); \
	if [ $$# -gt 0 ]; then cat "$$@" >&2; echo "test-tsan: $$# process(es) reported races" >&2; exit 1; fi; \
	exit $$rc

.PHONY: test-tsan
