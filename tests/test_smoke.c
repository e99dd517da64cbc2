/* test_smoke.c - proves the fixture: a private server answers PING, SET and GET sent
   through the codec over a plain socket. */
#include <criterion/criterion.h>
#include <string.h>

#include "fixture.h"
#include "resp.h"

static test_server srv;
static void up(void) { cr_assert_eq(srv_start(&srv, NULL), 0, "redis-server must start"); }
static void down(void) { srv_stop(&srv); }

TestSuite(smoke, .init = up, .fini = down);

Test(smoke, ping_set_get)
{
    char out[256];
    cr_assert_eq(SRV(&srv, out, "PING"), RESP_STRING);
    cr_assert_str_eq(out, "PONG");
    cr_assert_eq(SRV(&srv, out, "SET", "smoke:k", "v\r\n1"), RESP_STRING);
    cr_assert_str_eq(out, "OK");
    cr_assert_eq(SRV(&srv, out, "GET", "smoke:k"), RESP_BULK);
    cr_assert_str_eq(out, "v\r\n1");
    cr_assert_eq(SRV(&srv, out, "GET", "smoke:none"), RESP_NIL);
}
