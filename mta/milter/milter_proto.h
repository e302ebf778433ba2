/*
 * milter_proto.h - the Sendmail milter wire protocol, MTA side: pure encoders
 * and decoders, no I/O, no logging (fuzzed by tests/fuzz/milter_reply_fuzz.c).
 *
 * Every packet, both directions: u32 length (network order, counts the command
 * byte and the data), one command byte, data. Strings are octets plus one NUL.
 * Constants are libmilter's (mfdef.h); see shared/reference/milter-protocol.md.
 *
 * Nothing here allocates on behalf of the peer before a limit was checked:
 * milter_proto_frame() looks at the 4-byte length first and refuses zero and
 * oversized packets before a reader spends memory on the data.
 */
#ifndef POSTERN_MILTER_PROTO_H
#define POSTERN_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define MILTER_LEN_BYTES 4     /* the u32 length prefix */
#define MILTER_CHUNK_MAX 65535 /* largest BODY chunk we send (libmilter's MILTER_CHUNK_SIZE) */
/* Largest reply data we accept by default: libmilter never sends more than 1 MiB
 * (SMFIP_MDS_1M) per packet; a little slack for the command byte. */
#define MILTER_REPLY_MAX_DEFAULT (1024 * 1024 + 64)

/* Command letters (MTA -> filter). */
#define MILTER_C_ABORT 'A'
#define MILTER_C_BODY 'B'
#define MILTER_C_CONNECT 'C'
#define MILTER_C_MACRO 'D'
#define MILTER_C_EOM 'E'
#define MILTER_C_HELO 'H'
#define MILTER_C_HEADER 'L'
#define MILTER_C_MAIL 'M'
#define MILTER_C_EOH 'N'
#define MILTER_C_OPTNEG 'O'
#define MILTER_C_QUIT 'Q'
#define MILTER_C_QUIT_NC 'K' /* session over, a new CONNECT follows on this socket */
#define MILTER_C_RCPT 'R'
#define MILTER_C_DATA 'T'
#define MILTER_C_UNKNOWN 'U'

/* SMFIF_* action flags (what edits the MTA can perform). */
#define MILTER_F_ADDHDRS 0x001u
#define MILTER_F_CHGBODY 0x002u
#define MILTER_F_ADDRCPT 0x004u
#define MILTER_F_DELRCPT 0x008u
#define MILTER_F_CHGHDRS 0x010u
#define MILTER_F_QUARANTINE 0x020u
#define MILTER_F_CHGFROM 0x040u
#define MILTER_F_ADDRCPT_PAR 0x080u
#define MILTER_F_SETSYMLIST 0x100u

/* SMFIP_* protocol flags (steps a filter does not want / will not answer). */
#define MILTER_P_NOCONNECT 0x00000001u
#define MILTER_P_NOHELO 0x00000002u
#define MILTER_P_NOMAIL 0x00000004u
#define MILTER_P_NORCPT 0x00000008u
#define MILTER_P_NOBODY 0x00000010u
#define MILTER_P_NOHDRS 0x00000020u
#define MILTER_P_NOEOH 0x00000040u
#define MILTER_P_NR_HDR 0x00000080u
#define MILTER_P_NOUNKNOWN 0x00000100u
#define MILTER_P_NODATA 0x00000200u
#define MILTER_P_SKIP 0x00000400u
#define MILTER_P_RCPT_REJ 0x00000800u
#define MILTER_P_NR_CONN 0x00001000u
#define MILTER_P_NR_HELO 0x00002000u
#define MILTER_P_NR_MAIL 0x00004000u
#define MILTER_P_NR_RCPT 0x00008000u
#define MILTER_P_NR_DATA 0x00010000u
#define MILTER_P_NR_UNKN 0x00020000u
#define MILTER_P_NR_EOH 0x00040000u
#define MILTER_P_NR_BODY 0x00080000u
#define MILTER_P_HDR_LEADSPC 0x00100000u
#define MILTER_P_MDS_MASK 0x70000000u /* libmilter-internal size bits: cleared */

/* The events of a session, in protocol order. */
enum milter_stage {
	MILTER_STAGE_OPTNEG,  /* 'O' option negotiation */
	MILTER_STAGE_CONNECT, /* 'C' */
	MILTER_STAGE_HELO,    /* 'H' */
	MILTER_STAGE_MAIL,    /* 'M' */
	MILTER_STAGE_RCPT,    /* 'R' */
	MILTER_STAGE_DATA,    /* 'T' (v4+) */
	MILTER_STAGE_UNKNOWN, /* 'U' (v3+) */
	MILTER_STAGE_HEADER,  /* 'L' */
	MILTER_STAGE_EOH,     /* 'N' */
	MILTER_STAGE_BODY,    /* 'B' */
	MILTER_STAGE_EOM,     /* 'E' */
	MILTER_STAGE_ABORT,   /* 'A' (never answered) */
	MILTER_STAGE_QUIT,    /* 'Q' (never answered) */
	MILTER_STAGE_COUNT    /* number of stages */
};

/* "CONNECT", "HELO", "MAIL", "RCPT", "DATA", "UNKNOWN", "HEADER",
 * "END-OF-HEADERS", "BODY", "END-OF-MESSAGE", ... (Postfix's log words). */
const char *milter_stage_name(enum milter_stage s);
/* The command letter of a stage ('C' for CONNECT...). */
char milter_stage_cmd(enum milter_stage s);
/* The SMFIP_NO* bit that suppresses the stage (0 if none). */
uint32_t milter_stage_no_bit(enum milter_stage s);
/* The SMFIP_NR_* bit that says "no reply" for the stage (0 if none).
 * EOM, ABORT, QUIT have none (EOM is always answered, the others never). */
uint32_t milter_stage_nr_bit(enum milter_stage s);

/* Macro lists: indices 0..6 are SMFIM_* (what a filter's symlist names). */
enum milter_macros {
	MILTER_MACROS_CONNECT = 0, /* SMFIM_CONNECT, milter_connect_macros */
	MILTER_MACROS_HELO = 1,    /* SMFIM_HELO, milter_helo_macros */
	MILTER_MACROS_MAIL = 2,    /* SMFIM_ENVFROM, milter_mail_macros */
	MILTER_MACROS_RCPT = 3,    /* SMFIM_ENVRCPT, milter_rcpt_macros */
	MILTER_MACROS_DATA = 4,    /* SMFIM_DATA, milter_data_macros */
	MILTER_MACROS_EOM = 5,     /* SMFIM_EOM, milter_end_of_data_macros */
	MILTER_MACROS_EOH = 6,     /* SMFIM_EOH, milter_end_of_header_macros */
	MILTER_MACROS_UNKNOWN = 7, /* no SMFIM_; milter_unknown_command_macros */
	MILTER_MACROS_COUNT = 8    /* number of lists */
};
#define MILTER_SYMLIST_COUNT 7 /* SMFIM_* values a filter may override */

/* The macro list used for a stage's 'D' packet, or -1 when the stage sends
 * no macros (OPTNEG, ABORT, QUIT). HEADER uses EOH's list, BODY uses EOM's. */
int milter_stage_macros(enum milter_stage s);

/* What the MTA offers for protocol version (2, 3, 4 or 6): the action and
 * protocol words Postfix sends. no_header_reply adds SMFIP_NR_HDR to the
 * offered protocol word. Returns 0, or -1 for an unsupported version. */
int milter_proto_offer(int version, bool no_header_reply, uint32_t *actions_r,
		       uint32_t *protocol_r);

/* Outcome of option negotiation. */
struct milter_neg {
	uint32_t version;  /* filter's version (2..MTA's) */
	uint32_t actions;  /* SMFIF_* the filter may use (subset of what we offered) */
	uint32_t protocol; /* SMFIP_* the filter asked for (MDS bits cleared) */
	char *symlist[MILTER_SYMLIST_COUNT]; /* owned macro list overrides, NULL = keep ours */
};

/*
 * Parse the filter's 'O' reply data (after the command byte; len bytes) given
 * what we offered. Checks: 12 fixed bytes, 2 <= version <= offered version,
 * actions a subset of offered, protocol bits a subset of offered (MDS bits
 * cleared first), symlist pairs well formed (stage 0..6, NUL-terminated
 * list, no trailing bytes) and only when SMFIF_SETSYMLIST was granted.
 * On success neg is filled (the caller frees it with milter_neg_free) and 0
 * returned; -1 with *error_r (static text) otherwise, neg left empty.
 */
int milter_proto_parse_optneg(const void *data, size_t len, uint32_t version, uint32_t actions,
			      uint32_t protocol, struct milter_neg *neg, const char **error_r);
/* Free the symlists; neg is zeroed. */
void milter_neg_free(struct milter_neg *neg);

/*
 * Look at the start of the input (n bytes) for one packet. Returns 1 when a
 * whole packet is there (*total_r = 4 + length), 0 when more bytes are
 * needed (*total_r = bytes needed so far, at least 4), -1 with *error_r when
 * the length is zero or larger than max (checked as soon as the 4 length
 * bytes have arrived, before any data is buffered).
 */
int milter_proto_frame(const void *p, size_t n, size_t max, size_t *total_r,
		       const char **error_r);

/*
 * Encoders: append one whole packet to out. Each returns 0, or -1 with out
 * unchanged when the packet would pass out's maximum or a field is invalid
 * (a string field holding a NUL cannot be encoded: there is none in a C
 * string, so only lengths are checked).
 */
int milter_proto_put(struct buf *out, char cmd, const void *data, size_t len);
/* 'O': version, actions, protocol. */
int milter_proto_put_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* cmd followed by n NUL-terminated strings (HELO, MAIL, RCPT, HEADER, UNKNOWN,
 * CHGFROM-like argv lists). */
int milter_proto_put_strs(struct buf *out, char cmd, const char *const *strs, size_t n);
/* 'C': hostname, family ('4', '6', 'L' or 'U'), port, address (no port and
 * address for 'U'). */
int milter_proto_put_connect(struct buf *out, const char *host, char family, uint16_t port,
			     const char *addr);
/* 'D': stage command letter, then n_pairs name/value pairs (nv[2k], nv[2k+1]). */
int milter_proto_put_macros(struct buf *out, char stage_cmd, const char *const *nv, size_t n_pairs);

/* Every reply a filter may send after option negotiation. */
enum milter_reply_type {
	MILTER_R_CONTINUE,    /* 'c' */
	MILTER_R_ACCEPT,      /* 'a' */
	MILTER_R_REJECT,      /* 'r' */
	MILTER_R_TEMPFAIL,    /* 't' */
	MILTER_R_DISCARD,     /* 'd' */
	MILTER_R_REPLYCODE,   /* 'y' text = validated reply text */
	MILTER_R_SHUTDOWN,    /* '4' */
	MILTER_R_SKIP,        /* 's' */
	MILTER_R_PROGRESS,    /* 'p' (not final) */
	MILTER_R_QUARANTINE,  /* 'q' text = reason (not final) */
	MILTER_R_ADDHEADER,   /* 'h' name, value (not final) */
	MILTER_R_INSHEADER,   /* 'i' index, name, value */
	MILTER_R_CHGHEADER,   /* 'm' index, name, value ("" = delete) */
	MILTER_R_ADDRCPT,     /* '+' addr */
	MILTER_R_ADDRCPT_PAR, /* '2' addr, args (may be empty) */
	MILTER_R_DELRCPT,     /* '-' addr */
	MILTER_R_CHGFROM,     /* 'e' addr, args (may be empty) */
	MILTER_R_REPLBODY,    /* 'b' body chunk */
};

/* A parsed reply. The views point into the packet given to the parser and
 * live as long as it does. */
struct milter_reply {
	enum milter_reply_type type; /* which reply */
	uint32_t index;              /* 'i', 'm' */
	struct str name;             /* header name ('h', 'i', 'm') */
	struct str value;            /* header value ('h', 'i', 'm') */
	struct str addr;             /* address ('+', '2', '-', 'e') */
	struct str args;             /* ESMTP args ('2', 'e'), empty when absent */
	struct str text;             /* 'y' raw reply text, 'q' reason */
	struct str body;             /* 'b' chunk */
};

/* Name of a reply type for logs ("continue", "addheader"...). */
const char *milter_reply_name(enum milter_reply_type t);
/* True for the replies that end the wait for the current command. */
bool milter_reply_is_final(enum milter_reply_type t);
/* True for the message modifications ('h' 'i' 'm' '+' '2' '-' 'e' 'b'). */
bool milter_reply_is_mod(enum milter_reply_type t);

/*
 * Parse one reply packet: pkt = command byte + data (len >= 1, i.e. the
 * packet without its length prefix), received while waiting at stage, from a
 * filter that negotiated neg. Refuses unknown letters, wrong data layout
 * (missing NUL, leftover bytes), modifications outside END-OF-MESSAGE or
 * without their SMFIF_* action, skip outside BODY or without SMFIP_SKIP,
 * quarantine without SMFIF_QUARANTINE, an empty or malformed header name, a
 * malformed 'y' text (milter_proto_replycode). Returns 0 and fills r, or -1
 * with *error_r (static text).
 */
int milter_proto_parse_reply(const void *pkt, size_t len, enum milter_stage stage,
			     const struct milter_neg *neg, struct milter_reply *r,
			     const char **error_r);

/*
 * Validate and normalise a 'y' reply text as Postfix does: every line
 * "[45]dd" followed by '-' (all but the last) or ' ' / end (last line), the
 * same code on every line, an enhanced status code (if present) whose class
 * digit equals the reply's first digit, lines separated by CRLF (a bare LF
 * is accepted and rewritten), no other control characters except TAB,
 * "%%" becomes "%". The normalised text is appended to out (lines joined by
 * CRLF, no trailing CRLF). Returns the reply class ('4' or '5'), or -1 with
 * *error_r (out may hold a partial result then).
 */
int milter_proto_replycode(struct str text, struct buf *out, const char **error_r);

#endif
