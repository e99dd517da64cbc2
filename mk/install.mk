# install.mk - `make install PREFIX=/usr/local DESTDIR=`: headers, both libraries (the shared
# one as libredkv.so.$(VERSION) with the soname link and the dev link), the tool, the
# pkg-config file, the man pages (redkv(1), redkv(3)) and the event-loop adapters
# (include/redkv/adapters/*.h). `make uninstall` removes them again.

BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL    ?= install
ADAPTER_HEADERS := $(wildcard include/redkv/adapters/*.h)

$(BUILD)/redkv.pc: mk/install.mk mk/tls.mk
	@mkdir -p $(dir $@)
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'exec_prefix=$${prefix}' \
		'libdir=$(patsubst $(PREFIX)%,$${exec_prefix}%,$(LIBDIR))' \
		'includedir=$(patsubst $(PREFIX)%,$${prefix}%,$(INCLUDEDIR))' \
		'' \
		'Name: redkv' \
		'Description: A namespaced key/value store on Redis (Litestar RedisStore semantics)' \
		'Version: $(VERSION)' \
		'Cflags: -I$${includedir}' \
		'Libs: -L$${libdir} -lredkv' \
		'Libs.private: -lpthread$(if $(TLS_PC_LIBS), $(TLS_PC_LIBS))' \
		$(if $(TLS_PC_REQ),'Requires.private: $(TLS_PC_REQ)') > $@

# Rebuilt each time: PREFIX may differ from the last run.
.PHONY: $(BUILD)/redkv.pc

install: all $(BUILD)/redkv.pc
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(INCLUDEDIR)/redkv/adapters
	$(INSTALL) -m 644 include/redkv.h include/resp.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(ADAPTER_HEADERS) $(DESTDIR)$(INCLUDEDIR)/redkv/adapters/
	$(INSTALL) -m 644 $(BUILD)/libredkv.a $(DESTDIR)$(LIBDIR)/libredkv.a
	$(INSTALL) -m 755 $(BUILD)/libredkv.so $(DESTDIR)$(LIBDIR)/libredkv.so.$(VERSION)
	ln -sf libredkv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libredkv.so
	$(INSTALL) -m 755 $(BUILD)/redkv $(DESTDIR)$(BINDIR)/redkv
	$(INSTALL) -m 644 $(BUILD)/redkv.pc $(DESTDIR)$(PKGCONFIGDIR)/redkv.pc
	$(INSTALL) -m 644 doc/redkv.1 $(DESTDIR)$(MANDIR)/man1/redkv.1
	$(INSTALL) -m 644 doc/redkv.3 $(DESTDIR)$(MANDIR)/man3/redkv.3

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/redkv.h $(DESTDIR)$(INCLUDEDIR)/resp.h \
		$(DESTDIR)$(LIBDIR)/libredkv.a $(DESTDIR)$(LIBDIR)/libredkv.so \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libredkv.so.$(VERSION) \
		$(DESTDIR)$(BINDIR)/redkv $(DESTDIR)$(PKGCONFIGDIR)/redkv.pc \
		$(DESTDIR)$(MANDIR)/man1/redkv.1 $(DESTDIR)$(MANDIR)/man3/redkv.3 \
		$(ADAPTER_HEADERS:include/%=$(DESTDIR)$(INCLUDEDIR)/%)
	-rmdir $(DESTDIR)$(INCLUDEDIR)/redkv/adapters $(DESTDIR)$(INCLUDEDIR)/redkv 2>/dev/null

.PHONY: install uninstall
