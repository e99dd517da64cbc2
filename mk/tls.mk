# tls.mk - `make TLS=mbedtls` or `make TLS=openssl`: the same library with rediss:// built in
# (net/tls_mbedtls.c or net/tls_openssl.c; each compiles to nothing in the other builds).
# Each flavour builds in a directory of its own (build-mbedtls, build-openssl, and
# build-san-* under SANITIZE=1) so that objects of different flavours never mix. The TLS
# libraries join every link of the library (the .so, the CLI, examples, tests, bench) and
# redkv.pc's private fields, so `pkg-config --static --libs redkv` links a static program.
#
# Included by the Makefile before its rules (BUILD must be known there) and again by its
# mk/*.mk wildcard at the end: the guard makes the second time a no-op.
ifndef REDKV_TLS_MK
REDKV_TLS_MK := 1

TLS ?=

ifeq ($(TLS),mbedtls)
TLS_DEFS    := -DREDKV_TLS_MBEDTLS
TLS_LIBS    := -lmbedtls -lmbedx509 -lmbedcrypto
TLS_PC_REQ  :=
TLS_PC_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto
else ifeq ($(TLS),openssl)
TLS_DEFS    := -DREDKV_TLS_OPENSSL
TLS_LIBS    := $(or $(shell pkg-config --libs openssl 2>/dev/null),-lssl -lcrypto)
TLS_PC_REQ  := openssl
TLS_PC_LIBS :=
else ifneq ($(TLS),)
$(error TLS=$(TLS): say TLS=mbedtls or TLS=openssl, or nothing for a build without TLS)
endif

ifneq ($(TLS),)
BUILD      := $(BUILD)-$(TLS)
CPPFLAGS   += $(TLS_DEFS)
LDLIBS_LIB += $(TLS_LIBS)
endif

else
# The second inclusion, after the Makefile's rules: tests that link programs of their own
# (test_docs) put REDKV_LDFLAGS after libredkv.a, so the TLS libraries go there too.
ifneq ($(TLS),)
TEST_ENV += REDKV_LDFLAGS="$(LDFLAGS) $(TLS_LIBS)"
endif
endif
