#!/usr/bin/env bash
# cross-test.sh - runs self-tests and CLI checks against a private, throw-away redis-server.
#
#   scripts/cross-test.sh [--selftest 'CMD'] ... [--cli 'CMD'] ...
#
# Starts redis-server on a free loopback port in a temp dir (no persistence), then for each
# --selftest runs `CMD URL` (e.g. 'qemu-aarch64 build/aarch64/selftest/selftest'), and for
# each --cli runs a few commands of the redkv tool CMD (set/get/exists/expires-in/delete/
# delete-all) and checks their output and exit codes. The server is always stopped and the
# temp dir removed, whatever happens (trap). Each program gets $SELFTEST_TIMEOUT seconds
# (default 300; qemu is slow). Exits non-zero when anything failed.
set -u

selftests=()
clis=()
while [ $# -gt 0 ]; do
    case "$1" in
    --selftest) selftests+=("$2"); shift 2 ;;
    --cli) clis+=("$2"); shift 2 ;;
    *) echo "usage: $0 [--selftest 'CMD']... [--cli 'CMD']..." >&2; exit 2 ;;
    esac
done

command -v redis-server >/dev/null || { echo "cross-test: redis-server not found" >&2; exit 2; }

dir=$(mktemp -d /tmp/redkv-cross-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 0 when something answers PING on 127.0.0.1:$1
ping_port() (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3
    [ "${reply%$'\r'}" = "+PONG" ]
)

port=
for attempt in 1 2 3 4 5 6 7 8; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    # skip a port something already listens on
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize no --logfile "$dir/redis.log" --protected-mode no &
    pid=$!
    for _ in $(seq 1 100); do
        if ping_port "$p" 2>/dev/null; then port=$p; break 2; fi
        kill -0 "$pid" 2>/dev/null || break       # died (port taken?): try another
        sleep 0.05
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
done
if [ -z "$port" ]; then
    echo "cross-test: redis-server did not start" >&2
    cat "$dir/redis.log" >&2 2>/dev/null
    exit 2
fi
url="redis://127.0.0.1:$port"
echo "# redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') pid $pid on $url"

failed=0

for st in "${selftests[@]+"${selftests[@]}"}"; do
    echo "# ---- $st $url"
    # shellcheck disable=SC2086  # CMD is a word list on purpose
    if timeout "${SELFTEST_TIMEOUT:-300}" $st "$url"; then
        echo "# PASS: $st"
    else
        echo "# FAIL ($?): $st"
        failed=1
    fi
done

# CLI checks: expect_out WANT_STATUS WANT_OUTPUT ARGS...
cli_check() {
    local cli=$1 want_rc=$2 want_out=$3 out rc
    shift 3
    # shellcheck disable=SC2086
    out=$(timeout 60 $cli -u "$url" -n crosstest "$@" 2>"$dir/cli.err")
    rc=$?
    if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ]; then
        echo "ok - redkv $* -> $rc '$out'"
    else
        echo "not ok - redkv $*: exit $rc (want $want_rc), output '$out' (want '$want_out'): $(cat "$dir/cli.err")"
        failed=1
    fi
}

for cli in "${clis[@]+"${clis[@]}"}"; do
    echo "# ---- CLI: $cli"
    cli_check "$cli" 0 "" set greeting "hello, redkv"
    cli_check "$cli" 0 "hello, redkv" get greeting
    cli_check "$cli" 0 "true" exists greeting
    cli_check "$cli" 0 "persistent" expires-in greeting
    cli_check "$cli" 0 "" set short v --expires-in 60
    cli_check "$cli" 0 "60" expires-in short
    cli_check "$cli" 0 "v" get short --renew-for 2m
    cli_check "$cli" 0 "120" expires-in short
    cli_check "$cli" 0 "" delete greeting
    cli_check "$cli" 1 "" get greeting
    cli_check "$cli" 1 "false" exists greeting
    cli_check "$cli" 0 "" delete-all
    cli_check "$cli" 1 "false" exists short
done

if [ "$failed" = 0 ]; then
    echo "# cross-test: all passed"
else
    echo "# cross-test: FAILED"
fi
exit "$failed"
