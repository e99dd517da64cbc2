# make soak: redkv under chaos (kill -9 and restart, SIGSTOP, CLIENT KILL, DEBUG SLEEP) against
# its own redis-server, for SOAK_SECONDS (default 60); SOAK_SEED repeats a chaos schedule.
# Not part of `make test`. See tests/soak/soak.c for what it checks.
SOAK_SECONDS ?= 60
SOAK_SEED    ?=
SOAK_ARGS    ?=

$(BUILD)/soak: tests/soak/soak.c $(BUILD)/libredkv.a include/redkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libredkv.a -lpthread

soak: $(BUILD)/soak
	$(BUILD)/soak --seconds $(SOAK_SECONDS) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) $(SOAK_ARGS)

.PHONY: soak
