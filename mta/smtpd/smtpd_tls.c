/*
 * smtpd_tls.c - OpenSSL server side for smtpd (see smtpd_tls.h).
 *
 * Purpose: one SSL_CTX per configuration, one SSL per TLS session, on
 * libevent's bufferevent_openssl. Owns: the SSL_CTX (freed by smtpd_conf).
 * Never: blocks on the network (the handshake runs in the event loop);
 * accepts SSLv2/SSLv3 or renegotiation.
 * Limits: OpenSSL defaults for protocol versions and ciphers.
 * Tests: tests/integration/test_smtpd_tls.py.
 */
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "mta/smtpd/smtpd_tls.h"
#include "lib/common.h"

static char smtpd_tls_errbuf[512];

const char *smtpd_tls_error(void)
{
	unsigned long e;
	smtpd_tls_errbuf[0] = '\0';
	size_t off = 0;
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		int k = snprintf(smtpd_tls_errbuf + off, sizeof(smtpd_tls_errbuf) - off, "%s%s",
				 off ? "; " : "", one);
		if (k < 0 || (size_t)k >= sizeof(smtpd_tls_errbuf) - off)
			break;
		off += (size_t)k;
	}
	if (smtpd_tls_errbuf[0] == '\0')
		snprintf(smtpd_tls_errbuf, sizeof(smtpd_tls_errbuf), "unknown TLS error");
	return smtpd_tls_errbuf;
}

SSL_CTX *smtpd_tls_ctx_new(const struct cfg *cfg, const char **error_r)
{
	const char *cert = cfg->smtpd_tls_cert_file;
	const char *key = cfg->smtpd_tls_key_file[0] ? cfg->smtpd_tls_key_file : cert;
	if (cfg->smtpd_tls_chain_files[0] != '\0') {
		/* key and chain in one file (the first of the list) */
		cert = cfg->smtpd_tls_chain_files;
		key = cert;
	}
	if (cert[0] == '\0') {
		*error_r = "no smtpd_tls_cert_file configured";
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = smtpd_tls_error();
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		static char why[600];
		snprintf(why, sizeof(why), "%s: %s", cert, smtpd_tls_error());
		*error_r = why;
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct bufferevent *smtpd_tls_filter(struct event_base *base, struct bufferevent *under, SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_filter_new(base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
}

struct bufferevent *smtpd_tls_socket(struct event_base *base, int fd, SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
}

void smtpd_tls_describe(struct bufferevent *bev, char *out, size_t n)
{
	out[0] = '\0';
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (ssl == NULL)
		return;
	int alg = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg);
	snprintf(out, n, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
		 SSL_get_cipher_name(ssl), bits, alg);
}
