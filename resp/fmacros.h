/* fmacros.h - included first by every source file of the library, so that it builds the
 * same without the Makefile's flags (a one-file amalgamation, another build system). */
#ifndef REDKV_FMACROS_H
#define REDKV_FMACROS_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L      /* clock_gettime, getaddrinfo, strnlen, ... */
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE              /* epoll_create1, F_DUPFD_CLOEXEC on older libcs */
#endif

/* Marks the library's internal (rk_*) functions: external across its files, and static in
   the amalgamation (make amalgamation), which then exports the public API alone. */
#ifndef RK_INTERNAL
#define RK_INTERNAL
#endif

#endif
