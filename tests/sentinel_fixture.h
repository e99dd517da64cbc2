/* sentinel_fixture.h - Redis Sentinel on loopback for the tests: a master and its replica
 * (redis-server --replicaof) watched by three sentinels (redis-server --sentinel, as
 * Debian's redis-sentinel runs it) with down-after-milliseconds 1000, so that a failover
 * takes seconds. sentinel_up is a Criterion init (it asserts); sentinel_stop stops every
 * process and removes the dirs, even after a failure; the processes get PR_SET_PDEATHSIG
 * like fixture.c's. */
#ifndef REDKV_TEST_SENTINEL_FIXTURE_H
#define REDKV_TEST_SENTINEL_FIXTURE_H

#include "fixture.h"

#define SNT_SENTINELS 3
#define SNT_MASTER_NAME "mymaster"
extern test_server snt_data[2];               /* [0] the master at the start, [1] its replica */
extern test_server snt_sentinel[SNT_SENTINELS];
extern char snt_url[512];                     /* redis+sentinel://<the three>/mymaster */

/* Passwords: of the data nodes (requirepass, masterauth, sentinel auth-pass) and of the
   sentinels (requirepass in sentinel.conf); NULL for none. */
void sentinel_up_with(const char *data_pass, const char *sentinel_pass);
void sentinel_up(void);                       /* no passwords */
void sentinel_stop(void);

/* A command (NULL-terminated argv) after AUTH pass (NULL: none), on a fresh socket; the
   reply as srv_call writes it. The reply type, or -1. */
int snt_call(const test_server *s, const char *pass, char *out, size_t cap, const char *const *argv);
#define SNT(s, pass, out, ...) \
    snt_call((s), (pass), (out), sizeof(out), (const char *const[]){__VA_ARGS__, NULL})
/* 1 when ROLE says master. */
int snt_is_master(const test_server *s, const char *pass);
/* The port every sentinel names as the master now (0: they disagree, or do not answer). */
int snt_named_port(const char *sentinel_pass);

#endif
