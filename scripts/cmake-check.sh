#!/bin/sh
# cmake-check.sh OUT - `make cmake-check`: the CMake build agrees with the Makefile and its
# package works.
#   1. CMake's library sources (written at configure) are the Makefile's ($(LIB_SRC), from
#      `make print-sources`);
#   2. the library, the tool and the package build warning-free and install into OUT/prefix;
#   3. tests/cmake-consumer builds and runs against that install (find_package), then
#      against the source tree (add_subdirectory), linking the shared and the static library;
#   4. the switches configure and build: REDKV_NO_THREADS + REDKV_NO_CLUSTER (no pthread
#      symbol may remain), and REDKV_TLS=openssl / mbedtls when that library is installed.
# CC and CMAKE_GENERATOR are honoured; MAKE is the make that prints the Makefile's list.
set -eu
# cmake --build runs its own make: not as a child of ours (job server, directory messages).
unset MAKEFLAGS MFLAGS MAKELEVEL
out=${1:-build/cmake}
src=$(pwd)
rm -rf "$out"
mkdir -p "$out"

step() { printf '\n--- cmake-check: %s ---\n' "$*"; }

step "the source lists of CMake and the Makefile"
cmake -S . -B "$out/lib" -DCMAKE_INSTALL_PREFIX="$src/$out/prefix" -DREDKV_WERROR=ON >/dev/null
${MAKE:-make} -s --no-print-directory print-sources | tr ' ' '\n' | sed '/^$/d' | sort > "$out/make-sources.txt"
sort "$out/lib/redkv-sources.txt" | sed '/^$/d' > "$out/cmake-sources.txt"
if ! diff -u "$out/make-sources.txt" "$out/cmake-sources.txt"; then
    echo "cmake-check: the Makefile (-) and CMake (+) build different sources" >&2
    exit 1
fi
echo "same $(wc -l < "$out/make-sources.txt") sources"

step "build and install the library, the tool and the package"
cmake --build "$out/lib" -j 2
cmake --install "$out/lib" >/dev/null

for f in include/redkv.h include/resp.h include/redkv/adapters/libuv.h \
         include/redkv/adapters/libevent.h include/redkv/adapters/libev.h \
         lib/libredkv.a lib/libredkv.so lib/cmake/redkv/redkvConfig.cmake \
         lib/cmake/redkv/redkvConfigVersion.cmake lib/pkgconfig/redkv.pc bin/redkv; do
    test -e "$out/prefix/$f" || { echo "cmake-check: $f was not installed" >&2; exit 1; }
done

step "a consumer through find_package(redkv)"
cmake -S tests/cmake-consumer -B "$out/consumer-installed" -DCMAKE_PREFIX_PATH="$src/$out/prefix" >/dev/null
cmake --build "$out/consumer-installed"
"$out/consumer-installed/consumer"
"$out/consumer-installed/consumer_static"

step "a consumer through add_subdirectory(redkv)"
cmake -S tests/cmake-consumer -B "$out/consumer-subdir" -DREDKV_SOURCE_DIR="$src" >/dev/null
cmake --build "$out/consumer-subdir" -j 2
"$out/consumer-subdir/consumer"
"$out/consumer-subdir/consumer_static"

step "REDKV_NO_THREADS and REDKV_NO_CLUSTER"
cmake -S . -B "$out/small" -DREDKV_NO_THREADS=ON -DREDKV_NO_CLUSTER=ON -DREDKV_WERROR=ON >/dev/null
cmake --build "$out/small" -j 2 --target redkv_static
if nm -u "$out/small/libredkv.a" | grep pthread_; then
    echo "cmake-check: REDKV_NO_THREADS left pthread symbols" >&2
    exit 1
fi

# A TLS backend is tried when its library is installed (CI installs both).
tls_build() {
    step "REDKV_TLS=$1"
    cmake -S . -B "$out/tls-$1" -DREDKV_TLS="$1" -DREDKV_WERROR=ON >/dev/null
    cmake --build "$out/tls-$1" -j 2 --target redkv
    grep -q "REDKV_TLS_$(echo "$1" | tr a-z A-Z)" "$out/tls-$1/CMakeFiles/redkv.dir/flags.make" ||
        { echo "cmake-check: REDKV_TLS=$1 did not define its macro" >&2; exit 1; }
}
if [ -e /usr/include/openssl/ssl.h ]; then tls_build openssl; else echo "(no OpenSSL headers: REDKV_TLS=openssl not tried)"; fi
if [ -e /usr/include/mbedtls/ssl.h ]; then tls_build mbedtls; else echo "(no mbedtls headers: REDKV_TLS=mbedtls not tried)"; fi
if cmake -S . -B "$out/tls-bad" -DREDKV_TLS=gnutls >/dev/null 2>&1; then
    echo "cmake-check: REDKV_TLS=gnutls was accepted" >&2
    exit 1
fi

echo
echo "cmake-check: CMake build, package and source list OK"
