#!/bin/sh
# demo.sh - a short narrated tour of the redkv tool and the hello example, against a private
# redis-server in a temp dir on a free port. Whatever happens (failure, Ctrl-C), the server
# is stopped and the dir removed.
#
#   scripts/demo.sh [BUILD_DIR]        (default: build; `make demo` runs it)
set -eu

BUILD=${1:-build}
REDKV=$BUILD/redkv
HELLO=$BUILD/examples/hello
for f in "$REDKV" "$HELLO"; do
    [ -x "$f" ] || { echo "demo: $f is missing: run make first" >&2; exit 1; }
done
command -v redis-server >/dev/null 2>&1 || { echo "demo: redis-server is not installed" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/redkv-demo-XXXXXX")
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nobody uses: try random ones until a server of ours answers on its own unix socket
# (unique to our dir, so a stranger on the port cannot answer in its place; redis-server
# binds TCP first and exits when the port is taken).
random_port() {
    od -An -N2 -tu2 /dev/urandom 2>/dev/null | awk -v pid=$$ '{ srand(); print 20000 + ($1 + pid + int(rand() * 30000)) % 40000 }'
}
PORT=
for attempt in 1 2 3 4 5 6 7 8; do
    port=$(random_port)
    rm -f "$DIR/redis.sock"
    redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$DIR/redis.sock" \
        --unixsocketperm 700 --dir "$DIR" --save "" --appendonly no --daemonize no \
        --logfile "$DIR/redis.log" --protected-mode no >/dev/null 2>&1 &
    PID=$!
    i=0
    while [ $i -lt 100 ] && kill -0 "$PID" 2>/dev/null; do
        if "$REDKV" -u "unix://$DIR/redis.sock" --timeout 200 ping >/dev/null 2>&1; then
            PORT=$port
            break 2
        fi
        sleep 0.05
        i=$((i + 1))
    done
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
done
[ -n "$PORT" ] || { echo "demo: could not start redis-server (see its log above)" >&2; cat "$DIR/redis.log" >&2; exit 1; }

REDKV_URL=redis://127.0.0.1:$PORT
export REDKV_URL
unset REDKV_PASSWORD || true

say() { printf '\n# %s\n' "$*"; }
run() {
    printf '$ redkv'
    for a in "$@"; do
        case $a in
            *[!A-Za-z0-9_./:=-]* | "") printf " '%s'" "$a" ;;
            *) printf ' %s' "$a" ;;
        esac
    done
    printf '\n'
    "$REDKV" "$@"
}
status() {      # run, and show the exit code as well (for the commands that answer with it)
    set +e
    run "$@"
    rc=$?
    set -e
    printf '(exit %d)\n' "$rc"
}

printf 'redkv demo: a private redis-server on 127.0.0.1:%s (REDKV_URL=%s)\n' "$PORT" "$REDKV_URL"

say "Is it there?"
run ping

say "A session that expires in 30 minutes, in the default namespace LITESTAR"
run set session:42 '{"user":"ada"}' --expires-in 30m
run get session:42; echo
run expires-in session:42

say "Read it and renew it for 2 hours, atomically (a Lua script on the server)"
run get session:42 --renew-for 2h; echo
run expires-in session:42

say "Replace the value but keep its expiry"
run set session:42 '{"user":"ada","cart":3}' --keep-ttl
run expires-in session:42

say "Values are binary: from standard input with -, back on standard output as is"
printf 'line 1\nline 2\0after a NUL\n' | run set blob -
"$REDKV" get blob | od -c | head -3

say "Short lives: 1500 ms rounds up to 2 seconds; then it is gone (exit 1)"
run set flash hi --expires-in 1500ms
run expires-in flash
sleep 1.6
status get flash
status exists flash

say "Namespaces: -n APP, and -c for children (APP_cache, APP_cache_html)"
run -n APP set greeting hello
run -n APP -c cache set page:/ '<h1>hi</h1>' --expires-in 10m
run -n APP -c cache -c html set page:/about '<p>about</p>'
run -n APPX set sibling 'not a child of APP: APPX is a sibling'
echo "# the keys as Redis sees them:"
"$REDKV" --no-namespace exists APP:greeting >/dev/null && echo "APP:greeting"
"$REDKV" --no-namespace exists APP_cache:page:/ >/dev/null && echo "APP_cache:page:/"
"$REDKV" --no-namespace exists APP_cache_html:page:/about >/dev/null && echo "APP_cache_html:page:/about"
"$REDKV" --no-namespace exists APPX:sibling >/dev/null && echo "APPX:sibling"

say "delete-all on APP_cache takes it and its child, not APP itself"
run -n APP -c cache delete-all
status -n APP -c cache -c html exists page:/about
status -n APP exists greeting

say "delete-all on APP takes the rest of APP, and spares the sibling APPX"
run -n APP delete-all
status -n APP exists greeting
run -n APPX get sibling; echo

say "Bad input is refused before anything is sent (exit 2)"
status set k v --expires-in soon
status set k v --expires-in 10s --keep-ttl

say "An unreachable server (exit 3)"
status -u redis://127.0.0.1:1 --timeout 500 ping

say "The C API: build/examples/hello (examples/hello.c)"
echo "\$ $HELLO $REDKV_URL"
"$HELLO" "$REDKV_URL"

printf '\nredkv demo: done; stopping the server.\n'
