#!/bin/sh
# size-report.sh - text bytes of libredkv.a (codec + net + store), per object, per layer and
# in total, built with and without threads, beside a reference library (hiredis) if present.
#
#   scripts/size-report.sh LIMIT DIR_THREADS DIR_NOTHREADS [REFERENCE.a]
#
# DIR_*: build directories holding libredkv.a and obj/{resp,net,store}/*.o.
# Exits 1 when the library without threads (every optional part off: the minimal build)
# is over LIMIT bytes of text; LIMIT 0 only reports.
set -eu
limit=$1 dir=$2 nt=$3 ref=${4:-}

text() { size "$@" | awk 'NR > 1 { s += $1 } END { print s + 0 }'; }
kib() { awk "BEGIN { printf \"%.1f KiB\", $1 / 1024 }"; }

printf '%-22s %10s %12s\n' "text bytes" threads no-threads
for layer in resp net store; do
    for o in "$dir"/obj/$layer/*.o; do
        name=$layer/$(basename "$o")
        printf '  %-20s %10d %12d\n' "$name" "$(text "$o")" "$(text "$nt/obj/$name")"
    done
    printf '  %-20s %10d %12d\n' "= $layer/" "$(text "$dir"/obj/$layer/*.o)" \
        "$(text "$nt"/obj/$layer/*.o)"
done
t=$(text "$dir/libredkv.a")
n=$(text "$nt/libredkv.a")
goal=$( [ "$limit" -gt 0 ] && echo "; goal without threads <= $limit" || true)
printf '%-22s %10d %12d   (%s / %s%s)\n' "libredkv.a" "$t" "$n" "$(kib "$t")" \
    "$(kib "$n")" "$goal"
if [ -n "$ref" ] && [ -f "$ref" ]; then
    r=$(text "$ref")
    printf '%-22s %10d %12s   (%s, %s)\n' "$(basename "$ref")" "$r" "" "$(kib "$r")" "$ref"
else
    echo "(no ${ref:-reference library} here to compare with)"
fi
if [ "$limit" -gt 0 ] && [ "$n" -gt "$limit" ]; then
    echo "size: the minimal libredkv.a text is $n bytes, over the $limit-byte goal" >&2
    exit 1
fi
