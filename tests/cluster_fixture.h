/* cluster_fixture.h - a Redis Cluster on loopback for the tests: 3 masters with a replica
 * each (redis-server --cluster-enabled yes, then redis-cli --cluster create), started by
 * cluster_up (a Criterion init: it asserts) and stopped by cluster_stop, even after a
 * failure; the servers get PR_SET_PDEATHSIG like fixture.c's. */
#ifndef REDKV_TEST_CLUSTER_FIXTURE_H
#define REDKV_TEST_CLUSTER_FIXTURE_H

#include "fixture.h"

#define NODES 6
extern test_server cluster_node[NODES];
extern char cluster_url[512];   /* redis+cluster://<node 0>,<node 1> */

void cluster_up(void);
void cluster_stop(void);
/* The same cluster over TLS only (TLS builds): certificates made (tls_fixture.h), each node
   with port 0, a tls-port (cluster_tls_port[i]; the bus at +10000), tls-cluster and
   tls-replication; cluster_url is rediss+cluster://...?ssl_ca_certs=<ca>. cluster_node[i]
   has port 0: SRV reaches it on its unix socket. */
extern int cluster_tls_port[NODES];
void cluster_up_tls(void);
void cluster_stop_tls(void);
int cluster_is_master(const test_server *s);
/* The master serving slot now: the node whose own line of CLUSTER NODES lists it, or NULL. */
test_server *cluster_master_of(int slot);
/* A free port whose cluster bus port (+10000) is free too, below the ephemeral range. */
int cluster_pick_port(void);

#endif
