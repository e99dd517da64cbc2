#!/bin/sh
# size-report.sh - the size of libredkv.a (codec + net + store), per object, per layer and
# in total, built with and without threads, beside a reference library (hiredis) if present.
#
#   scripts/size-report.sh LIMIT DIR_THREADS DIR_NOTHREADS [REFERENCE.a]
#
# DIR_*: build directories holding libredkv.a and obj/{resp,net,store}/*.o.
# What is counted is code and constant data (.text and .rodata sections): what a small
# target's flash holds. The x86-64 unwind tables (.eh_frame) that `size`'s own "text" column
# adds are reported beside it: C code does not need them, and embedded builds leave them out
# (-fno-asynchronous-unwind-tables).
# Exits 1 when the library without threads (every optional part off: the minimal build)
# is over LIMIT bytes; LIMIT 0 only reports.
set -eu
limit=$1 dir=$2 nt=$3 ref=${4:-}

# code and constants of the objects or archives named
code() { size -A "$@" | awk '$1 ~ /^\.(text|rodata)/ { s += $2 } END { print s + 0 }'; }
# what `size` calls text: code, constants and unwind tables
berkeley() { size "$@" | awk 'NR > 1 { s += $1 } END { print s + 0 }'; }
kib() { awk "BEGIN { printf \"%.1f KiB\", $1 / 1024 }"; }

printf '%-22s %10s %12s\n' ".text+.rodata bytes" threads no-threads
for layer in resp net store; do
    for o in "$dir"/obj/$layer/*.o; do
        name=$layer/$(basename "$o")
        printf '  %-20s %10d %12d\n' "$name" "$(code "$o")" "$(code "$nt/obj/$name")"
    done
    printf '  %-20s %10d %12d\n' "= $layer/" "$(code "$dir"/obj/$layer/*.o)" \
        "$(code "$nt"/obj/$layer/*.o)"
done
t=$(code "$dir/libredkv.a")
n=$(code "$nt/libredkv.a")
goal=$( [ "$limit" -gt 0 ] && echo "; goal without threads <= $limit" || true)
printf '%-22s %10d %12d   (%s / %s%s)\n' "libredkv.a" "$t" "$n" "$(kib "$t")" \
    "$(kib "$n")" "$goal"
printf '%-22s %10d %12d   (size(1)'"'"'s text column: with .eh_frame)\n' "  with unwind tables" \
    "$(berkeley "$dir/libredkv.a")" "$(berkeley "$nt/libredkv.a")"
if [ -n "$ref" ] && [ -f "$ref" ]; then
    r=$(code "$ref")
    printf '%-22s %10d %12s   (%s; %d with unwind tables; %s)\n' "$(basename "$ref")" "$r" "" \
        "$(kib "$r")" "$(berkeley "$ref")" "$ref"
else
    echo "(no ${ref:-reference library} here to compare with)"
fi
if [ "$limit" -gt 0 ] && [ "$n" -gt "$limit" ]; then
    echo "size: the minimal libredkv.a has $n bytes of code and constants, over the" \
         "$limit-byte goal" >&2
    exit 1
fi
