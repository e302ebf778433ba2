/*
 * cfg_params.h - THE declaration table of every main.cf parameter Postern knows.
 *
 * One line per parameter, consumed as an X-macro by lib/cfg.h (the fields of
 * struct cfg) and lib/cfg.c (names, defaults, parsing, printing):
 *
 *   CFG_PARAM(TYPE, field, "default", extra, "short doc")
 *
 * TYPE     STR   char *     any text, $-expanded
 *          LIST  char *     comma/space separated list, $-expanded, kept as text;
 *                           when extra is "a|b|c" every word must be one of them
 *          RAW   char *     text kept unexpanded: its $names ($home, $user, ...) are
 *                           expanded at delivery time by the user of the value
 *          ENUM  char *     one of the words in extra ("a|b|c"); "" allowed only
 *                           when extra lists an empty word ("|a|b")
 *          INT   long long  decimal integer >= 0
 *          SIZE  long long  byte count >= 0 (plain decimal, as in Postfix)
 *          TIME  long long  seconds; value is a number with an optional unit
 *                           s m h d w; a bare number uses extra's unit ("s", "d")
 *          BOOL  bool       yes|no (also true|false|1|0, any case)
 * field    the C field name, which is the parameter's own name. A name that
 *          starts with a digit gets a leading underscore in C only
 *          (_2bounce_notice_recipient is main.cf's 2bounce_notice_recipient).
 * default  default value as main.cf text, $-expanded like any value. Postfix's
 *          default wherever the parameter exists in Postfix. A few defaults
 *          are computed at load time (cfg.c says which): myhostname, mydomain.
 * extra    NULL, or the unit / word list described above.
 *
 * Keep docs/configuration.md in sync: tests/unit/lib/cfg_test.c fails when a
 * parameter listed here is missing from it.
 */

/* ---- identity and addressing ---- */
CFG_PARAM(STR, config_directory, "/etc/postern", NULL, "directory holding main.cf and master.cf (set by the caller's -c, not by main.cf)")
CFG_PARAM(STR, myhostname, "", NULL, "fully qualified host name; default: gethostname(), plus .localdomain when it has no dot")
CFG_PARAM(STR, mydomain, "", NULL, "local domain; default: myhostname minus its first label, or localdomain")
CFG_PARAM(STR, myorigin, "$myhostname", NULL, "domain appended to unqualified sender addresses")
CFG_PARAM(LIST, mydestination, "$myhostname, localhost.$mydomain, localhost", NULL, "domains delivered locally (local(8) style)")
CFG_PARAM(LIST, mynetworks, "127.0.0.0/8 [::1]/128", NULL, "trusted client networks that may relay; Postern default is loopback only")
CFG_PARAM(LIST, relay_domains, "", NULL, "domains this host relays to (Postfix >= 3.0 default: empty)")
CFG_PARAM(LIST, relay_recipient_maps, "", NULL, "valid recipients in relay_domains (empty: all)")
CFG_PARAM(STR, relayhost, "", NULL, "default next hop for outbound mail (empty: direct MX delivery)")
CFG_PARAM(LIST, inet_interfaces, "all", NULL, "addresses smtpd listens on for master.cf services without a host part")
CFG_PARAM(LIST, inet_protocols, "all", "all|ipv4|ipv6", "address families used: all, ipv4, ipv6")
CFG_PARAM(LIST, proxy_interfaces, "", NULL, "extra addresses this host is reachable on through a proxy or NAT")
CFG_PARAM(STR, mail_name, "Postern", NULL, "product name used in the banner and in milter macro v")
CFG_PARAM(STR, mail_version, POSTERN_VERSION, NULL, "Postern's version (read-only in practice)")
CFG_PARAM(STR, compatibility_level, "3.6", NULL, "accepted for Postfix compatibility; Postern always behaves as the modern level")
CFG_PARAM(BOOL, append_dot_mydomain, "no", NULL, "append .$mydomain to user@host addresses (Postfix >= 3.0 default: no)")
CFG_PARAM(STR, readme_directory, "no", NULL, "accepted for Postfix compatibility, unused")
CFG_PARAM(BOOL, smtputf8_enable, "yes", NULL, "announce and accept SMTPUTF8 (RFC 6531)")

/* ---- files, directories, users ---- */
CFG_PARAM(STR, queue_directory, "/var/spool/postern", NULL, "root of the queue tree")
CFG_PARAM(STR, data_directory, "/var/lib/postern", NULL, "directory for Postern's own writable state (caches, locks)")
CFG_PARAM(STR, daemon_directory, "", NULL, "directory of postern-lda and helper programs; empty: the directory of the running postern binary (filled by the caller)")
CFG_PARAM(STR, command_directory, "", NULL, "directory of the postern command; empty: the directory of the running postern binary (filled by the caller)")
CFG_PARAM(STR, mail_owner, "postern", NULL, "unprivileged user the children run as when master starts as root")
CFG_PARAM(STR, default_privs, "nobody", NULL, "user for deliveries to commands and files from aliases owned by root")
CFG_PARAM(STR, maillog_file, "", NULL, "append log lines to this file instead of syslog; \"-\" is stderr")
CFG_PARAM(STR, syslog_name, "postern", NULL, "syslog ident prefix: lines read postern/smtpd[pid]")
CFG_PARAM(STR, syslog_facility, "mail", NULL, "syslog facility")

/* ---- size and count limits ---- */
CFG_PARAM(SIZE, message_size_limit, "10240000", NULL, "largest message accepted, in bytes (0: no limit)")
CFG_PARAM(SIZE, header_size_limit, "102400", NULL, "largest message header block kept in memory, in bytes")
CFG_PARAM(SIZE, line_length_limit, "2048", NULL, "longest message content line kept as one record; longer lines are split")
CFG_PARAM(INT, hopcount_limit, "50", NULL, "maximal number of Received: headers before a message bounces as looping")
CFG_PARAM(SIZE, mailbox_size_limit, "51200000", NULL, "largest local mailbox file or message for local delivery, bytes (0: none)")
CFG_PARAM(SIZE, virtual_mailbox_limit, "51200000", NULL, "largest virtual mailbox file or message, bytes (0: none)")
CFG_PARAM(SIZE, queue_minfree, "0", NULL, "free bytes the queue file system must keep; smtpd tempfails below it (0: only message_size_limit x 1.5)")

/* ---- processes ---- */
CFG_PARAM(INT, default_process_limit, "100", NULL, "default maxproc for master.cf services that say -")
CFG_PARAM(INT, smtpd_process_count, "1", NULL, "Postern-specific: number of event-driven smtpd processes master runs per listening service")

/* ---- queue ---- */
CFG_PARAM(TIME, queue_run_delay, "300s", "s", "interval between scans of the deferred queue")
CFG_PARAM(TIME, minimal_backoff_time, "300s", "s", "shortest wait before retrying a deferred message")
CFG_PARAM(TIME, maximal_backoff_time, "4000s", "s", "longest wait before retrying a deferred message")
CFG_PARAM(TIME, maximal_queue_lifetime, "5d", "d", "age after which a deferred message bounces")
CFG_PARAM(TIME, bounce_queue_lifetime, "5d", "d", "age after which an undeliverable bounce message is dropped")
CFG_PARAM(TIME, delay_warning_time, "0h", "h", "age at which the sender gets a delay notice (0: never)")
CFG_PARAM(INT, default_destination_concurrency_limit, "20", NULL, "parallel deliveries per destination")
CFG_PARAM(INT, local_destination_concurrency_limit, "20", NULL, "parallel postern-lda runs in all (Postfix: 2, per recipient)")
CFG_PARAM(INT, default_destination_recipient_limit, "50", NULL, "recipients per delivery")

/* ---- notification ---- */
CFG_PARAM(LIST, notify_classes, "resource, software", "bounce|2bounce|data|delay|policy|protocol|resource|software", "problem classes reported to the postmaster")
CFG_PARAM(STR, bounce_notice_recipient, "postmaster", NULL, "recipient of postmaster copies of bounces (notify_classes bounce)")
CFG_PARAM(STR, _2bounce_notice_recipient, "postmaster", NULL, "recipient of undeliverable bounces")
CFG_PARAM(STR, delay_notice_recipient, "postmaster", NULL, "recipient of postmaster copies of delay notices")
CFG_PARAM(STR, error_notice_recipient, "postmaster", NULL, "recipient of protocol and policy error reports")
CFG_PARAM(BOOL, soft_bounce, "no", NULL, "turn permanent delivery and reject failures into temporary ones (testing aid)")

/* ---- local delivery ---- */
CFG_PARAM(LIST, alias_maps, "lmdb:/etc/aliases", NULL, "alias tables for local recipients (Postfix default: hash:/etc/aliases)")
CFG_PARAM(LIST, alias_database, "lmdb:/etc/aliases", NULL, "alias tables built by postern map -a / newaliases")
CFG_PARAM(LIST, local_recipient_maps, "proxy:unix:passwd.byname $alias_maps", NULL, "tables of valid local recipients (empty: accept any)")
CFG_PARAM(STR, recipient_delimiter, "", NULL, "characters that separate user from address extension (user+ext)")
CFG_PARAM(STR, home_mailbox, "", NULL, "mailbox path relative to home; ending in / means Maildir (empty: mail_spool_directory)")
CFG_PARAM(STR, mail_spool_directory, "/var/mail", NULL, "directory of mbox spool files for local users")
CFG_PARAM(RAW, mailbox_command, "", NULL, "command that delivers local mail instead of the LDA's mailbox")
CFG_PARAM(RAW, forward_path, "$home/.forward${recipient_delimiter}${extension}, $home/.forward", NULL, ".forward files searched for local users")
CFG_PARAM(LIST, allow_mail_to_commands, "alias, forward", "alias|forward|include", "where |command destinations are allowed: alias, forward, include")
CFG_PARAM(LIST, allow_mail_to_files, "alias, forward", "alias|forward|include", "where /file destinations are allowed: alias, forward, include")
CFG_PARAM(LIST, propagate_unmatched_extensions, "canonical, virtual", "canonical|virtual|alias|forward|include", "address rewrites that keep an unmatched +extension")
CFG_PARAM(BOOL, enable_original_recipient, "yes", NULL, "record the original recipient (X-Original-To, DSN ORCPT)")
CFG_PARAM(LIST, prepend_delivered_header, "command, file, forward", "command|file|forward", "deliveries that get a Delivered-To: header")
CFG_PARAM(BOOL, biff, "no", NULL, "notify the comsat service of new mail (Postfix default: yes)")
CFG_PARAM(TIME, command_time_limit, "1000s", "s", "time limit for delivery to a |command")
CFG_PARAM(INT, unknown_local_recipient_reject_code, "550", NULL, "SMTP code for unknown local recipients")

/* ---- virtual delivery ---- */
CFG_PARAM(LIST, virtual_mailbox_domains, "$virtual_mailbox_maps", NULL, "domains whose recipients are looked up in virtual_mailbox_maps")
CFG_PARAM(STR, virtual_mailbox_base, "", NULL, "prefix of every virtual mailbox path")
CFG_PARAM(LIST, virtual_mailbox_maps, "", NULL, "tables: address -> mailbox path under virtual_mailbox_base (ending / = Maildir)")
CFG_PARAM(LIST, virtual_alias_domains, "$virtual_alias_maps", NULL, "domains whose recipients exist only as virtual aliases")
CFG_PARAM(LIST, virtual_alias_maps, "", NULL, "tables: address -> address list, applied to every recipient")
CFG_PARAM(LIST, virtual_uid_maps, "", NULL, "tables: address -> uid for virtual deliveries (static:N for one uid)")
CFG_PARAM(LIST, virtual_gid_maps, "", NULL, "tables: address -> gid for virtual deliveries")
CFG_PARAM(INT, virtual_minimum_uid, "100", NULL, "lowest uid virtual_uid_maps may give")
CFG_PARAM(INT, unknown_virtual_mailbox_reject_code, "550", NULL, "SMTP code for unknown virtual mailbox recipients")
CFG_PARAM(INT, unknown_relay_recipient_reject_code, "550", NULL, "SMTP code for recipients not in relay_recipient_maps")

/* ---- smtpd: session ---- */
CFG_PARAM(STR, smtpd_banner, "$myhostname ESMTP $mail_name", NULL, "text after 220 in the greeting")
CFG_PARAM(TIME, smtpd_timeout, "300s", "s", "idle time allowed while waiting for a client command or data")
CFG_PARAM(INT, smtpd_data_min_rate, "500", NULL, "Postern-specific: minimum bytes/second a client must send during DATA/BDAT (0: off)")
CFG_PARAM(LIST, authorized_submit_users, "static:anyone", NULL, "local users allowed to submit mail with sendmail(1): names, !name, type:table")
CFG_PARAM(INT, smtpd_recipient_limit, "1000", NULL, "recipients accepted per message")
CFG_PARAM(INT, smtpd_recipient_overshoot_limit, "1000", NULL, "RCPT commands over smtpd_recipient_limit that count as errors")
CFG_PARAM(INT, smtpd_hard_error_limit, "20", NULL, "errors after which smtpd disconnects")
CFG_PARAM(INT, smtpd_soft_error_limit, "10", NULL, "errors after which each reply is delayed by smtpd_error_sleep_time")
CFG_PARAM(TIME, smtpd_error_sleep_time, "1s", "s", "reply delay after smtpd_soft_error_limit errors (0: never delay)")
CFG_PARAM(INT, smtpd_junk_command_limit, "100", NULL, "NOOP/VRFY/ETRN/RSET commands counted as errors past this many")
CFG_PARAM(INT, smtpd_client_connection_count_limit, "50", NULL, "simultaneous sessions per client address (0: no limit)")
CFG_PARAM(INT, smtpd_client_connection_rate_limit, "0", NULL, "connections per client per anvil_rate_time_unit, counted per smtpd process (0: no limit)")
CFG_PARAM(TIME, anvil_rate_time_unit, "60s", "s", "time unit of the smtpd_client_*_rate_limit counters")
CFG_PARAM(LIST, smtpd_client_event_limit_exceptions, "$mynetworks", NULL, "clients exempt from the smtpd_client_*_rate_limit limits")
CFG_PARAM(BOOL, smtpd_helo_required, "no", NULL, "require HELO/EHLO before MAIL")
CFG_PARAM(BOOL, smtpd_delay_reject, "yes", NULL, "apply client/helo/sender restrictions at RCPT time")
CFG_PARAM(BOOL, disable_vrfy_command, "no", NULL, "reject VRFY")
CFG_PARAM(BOOL, strict_rfc821_envelopes, "no", NULL, "require <> around MAIL FROM/RCPT TO addresses")
CFG_PARAM(BOOL, smtpd_reject_unlisted_recipient, "yes", NULL, "reject recipients not found in the recipient tables of our domains")
CFG_PARAM(LIST, smtpd_discard_ehlo_keywords, "", NULL, "EHLO keywords not announced")
CFG_PARAM(ENUM, smtpd_forbid_bare_newline, "normalize", "normalize|yes|note|reject|no", "bare LF in commands or data (CVE-2023-51764): normalize treats it as CRLF but never as end of DATA (Postfix 3.9 default); yes and reject refuse the command or message; note is normalize plus a log note; no accepts it as in old Postfix")
CFG_PARAM(INT, smtpd_forbid_bare_newline_reject_code, "550", NULL, "SMTP code for rejected bare newlines")
CFG_PARAM(LIST, smtpd_forbid_bare_newline_exclusions, "$mynetworks", NULL, "clients exempt from smtpd_forbid_bare_newline")
CFG_PARAM(BOOL, smtpd_forbid_unauth_pipelining, "yes", NULL, "disconnect clients that pipeline before EHLO announces PIPELINING")

/* ---- smtpd: restrictions (stored; evaluated by the policy code) ---- */
CFG_PARAM(LIST, smtpd_client_restrictions, "", NULL, "restrictions applied to the client address")
CFG_PARAM(LIST, smtpd_helo_restrictions, "", NULL, "restrictions applied to HELO/EHLO")
CFG_PARAM(LIST, smtpd_sender_restrictions, "", NULL, "restrictions applied to MAIL FROM")
CFG_PARAM(LIST, smtpd_relay_restrictions, "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", NULL, "relay control at RCPT TO")
CFG_PARAM(LIST, smtpd_recipient_restrictions, "", NULL, "restrictions applied to RCPT TO after smtpd_relay_restrictions")
CFG_PARAM(LIST, smtpd_data_restrictions, "", NULL, "restrictions applied to DATA")
CFG_PARAM(LIST, smtpd_end_of_data_restrictions, "", NULL, "restrictions applied after the message content")
CFG_PARAM(LIST, header_checks, "", NULL, "tables matched against each header line")
CFG_PARAM(LIST, body_checks, "", NULL, "tables matched against each body line")

/* ---- smtpd: TLS and SASL ---- */
CFG_PARAM(STR, smtpd_tls_cert_file, "", NULL, "PEM certificate (chain) for STARTTLS; empty: no STARTTLS")
CFG_PARAM(STR, smtpd_tls_key_file, "$smtpd_tls_cert_file", NULL, "PEM private key for smtpd_tls_cert_file")
CFG_PARAM(STR, smtpd_tls_chain_files, "", NULL, "key+certificate chain files (alternative to cert/key file)")
CFG_PARAM(STR, smtpd_tls_CAfile, "", NULL, "CA certificates for client certificate verification")
CFG_PARAM(STR, smtpd_tls_CApath, "", NULL, "directory of CA certificates")
CFG_PARAM(ENUM, smtpd_tls_security_level, "", "|none|may|encrypt", "none, may (offer STARTTLS), encrypt (require it); empty: may when a certificate is configured")
CFG_PARAM(LIST, smtpd_tls_protocols, ">=TLSv1", NULL, "TLS protocol versions offered")
CFG_PARAM(LIST, smtpd_tls_mandatory_protocols, ">=TLSv1", NULL, "TLS protocol versions with security level encrypt")
CFG_PARAM(ENUM, smtpd_tls_ciphers, "medium", "export|low|medium|high|null", "cipher grade for opportunistic TLS")
CFG_PARAM(ENUM, smtpd_tls_mandatory_ciphers, "medium", "export|low|medium|high|null", "cipher grade with security level encrypt")
CFG_PARAM(INT, smtpd_tls_loglevel, "0", NULL, "TLS logging: 0 none, 1 summary, 2 negotiation")
CFG_PARAM(BOOL, smtpd_tls_received_header, "no", NULL, "put TLS protocol and cipher in the Received header")
CFG_PARAM(BOOL, smtpd_tls_wrappermode, "no", NULL, "TLS from the first byte (port 465, RFC 8314) instead of STARTTLS")
CFG_PARAM(BOOL, smtpd_tls_auth_only, "no", NULL, "offer AUTH only after STARTTLS")
CFG_PARAM(STR, smtpd_tls_session_cache_database, "", NULL, "accepted for Postfix compatibility; Postern uses RFC 5077 tickets")
CFG_PARAM(BOOL, smtpd_use_tls, "no", NULL, "legacy: same as smtpd_tls_security_level = may")
CFG_PARAM(BOOL, smtpd_enforce_tls, "no", NULL, "legacy: same as smtpd_tls_security_level = encrypt")
CFG_PARAM(BOOL, smtpd_sasl_auth_enable, "no", NULL, "offer SMTP AUTH (stored; SASL comes with its own issue)")
CFG_PARAM(STR, smtpd_sasl_type, "dovecot", NULL, "SASL implementation (Postern: dovecot only; Postfix default: cyrus)")
CFG_PARAM(STR, smtpd_sasl_path, "private/auth", NULL, "SASL server socket (relative paths are under queue_directory)")

/* ---- smtp client (outbound, stored for now) ---- */
CFG_PARAM(ENUM, smtp_tls_security_level, "", "|none|may|encrypt|dane|dane-only|fingerprint|verify|secure", "TLS policy for outbound SMTP")
CFG_PARAM(STR, smtp_tls_CAfile, "", NULL, "CA certificates for outbound server verification")
CFG_PARAM(STR, smtp_tls_CApath, "", NULL, "directory of CA certificates for outbound TLS")
CFG_PARAM(STR, smtp_tls_session_cache_database, "", NULL, "accepted for Postfix compatibility")
CFG_PARAM(TIME, smtp_connect_timeout, "30s", "s", "outbound TCP connect timeout")
CFG_PARAM(TIME, smtp_helo_timeout, "300s", "s", "outbound wait for greeting and EHLO reply")

/* ---- milters ---- */
CFG_PARAM(LIST, smtpd_milters, "", NULL, "milters for mail received over SMTP (unix:/path or inet:host:port)")
CFG_PARAM(LIST, smtpd_milter_maps, "", NULL, "tables keyed by client IP address whose value replaces smtpd_milters for that client (DISABLE: no milters)")
CFG_PARAM(LIST, non_smtpd_milters, "", NULL, "milters for mail submitted with sendmail(1) (same syntax as smtpd_milters)")
CFG_PARAM(INT, milter_protocol, "6", NULL, "milter protocol version offered (2..6)")
CFG_PARAM(BOOL, milter_connection_reuse, "yes", NULL, "end a session with QUIT_NC and keep the milter connection for the next session (Postern extension)")
CFG_PARAM(ENUM, milter_default_action, "tempfail", "accept|reject|tempfail|quarantine|shutdown", "what to do when a milter fails")
CFG_PARAM(TIME, milter_connect_timeout, "30s", "s", "milter connect timeout")
CFG_PARAM(TIME, milter_command_timeout, "30s", "s", "milter per-command timeout")
CFG_PARAM(TIME, milter_content_timeout, "300s", "s", "milter timeout for content and end of message")
CFG_PARAM(LIST, milter_connect_macros, "j {daemon_name} {daemon_addr} v _", NULL, "macros sent at connect")
CFG_PARAM(LIST, milter_helo_macros, "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}", NULL, "macros sent at HELO")
CFG_PARAM(LIST, milter_mail_macros, "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}", NULL, "macros sent at MAIL FROM")
CFG_PARAM(LIST, milter_rcpt_macros, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", NULL, "macros sent at RCPT TO")
CFG_PARAM(LIST, milter_data_macros, "i", NULL, "macros sent at DATA")
CFG_PARAM(LIST, milter_unknown_command_macros, "", NULL, "macros sent with unknown commands")
CFG_PARAM(LIST, milter_end_of_header_macros, "i", NULL, "macros sent at end of headers")
CFG_PARAM(LIST, milter_end_of_data_macros, "i", NULL, "macros sent at end of message")
CFG_PARAM(STR, milter_macro_daemon_name, "$myhostname", NULL, "value of the {daemon_name} macro")
CFG_PARAM(STR, milter_macro_v, "$mail_name $mail_version", NULL, "value of the v macro")
CFG_PARAM(STR, milter_macro_defaults, "", NULL, "name=value pairs sent to milters for macros smtpd has no value for")
