/*
 * smtpd_tls.h - OpenSSL for smtpd: the server context from main.cf and
 * the bufferevent that speaks TLS for STARTTLS (RFC 3207) and for
 * smtpd_tls_wrappermode (RFC 8314 implicit TLS).
 *
 * Tests: tests/integration/test_smtpd_tls.py.
 */
#ifndef POSTERN_SMTPD_TLS_H
#define POSTERN_SMTPD_TLS_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "lib/cfg.h"

/* A server SSL_CTX with smtpd_tls_cert_file / smtpd_tls_key_file (or
 * smtpd_tls_chain_files) loaded and checked. NULL with *error_r (static or
 * OpenSSL's text, valid until the next call). Blocks on file reads only. */
SSL_CTX *smtpd_tls_ctx_new(const struct cfg *cfg, const char **error_r);

/* Stack a TLS server filter on under (which the result owns and frees).
 * NULL when OpenSSL cannot make a session. */
struct bufferevent *smtpd_tls_filter(struct event_base *base, struct bufferevent *under, SSL_CTX *ctx);

/* A TLS server bufferevent directly on fd (implicit TLS); owns fd. */
struct bufferevent *smtpd_tls_socket(struct event_base *base, int fd, SSL_CTX *ctx);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for logs and
 * the Received header, into out (size n). "" when bev is not TLS. */
void smtpd_tls_describe(struct bufferevent *bev, char *out, size_t n);

/* The OpenSSL error queue as one line (drains it), for logs. */
const char *smtpd_tls_error(void);

#endif
