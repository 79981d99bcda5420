/*
 * Document encoding: pick the encoding of an HTML document the way the
 * WHATWG "determine the character encoding" steps do, and transcode it to
 * UTF-8 (the only encoding gumbo reads). Pure; no globals (iconv descriptors
 * are opened per call), so concurrent use on different documents is safe.
 */
#ifndef HERALD_CHARSET_H
#define HERALD_CHARSET_H

#include <stddef.h>

/** Where the chosen encoding came from (for tests and logs). */
typedef enum charset_source {
    CHARSET_FROM_BOM,       /* byte order mark: wins over everything */
    CHARSET_FROM_TRANSPORT, /* Content-Type charset parameter */
    CHARSET_FROM_META,      /* <meta> prescan of the first 1024 bytes */
    CHARSET_FROM_DEFAULT, /* nothing said: UTF-8 if the bytes are valid UTF-8, else windows-1252 */
} charset_source_t;

/** Longest canonical encoding name charset_sniff writes, with its NUL. */
#define CHARSET_NAME_MAX 32

/**
 * Decide the encoding of doc[0..len) (the first bytes suffice; the prescan
 * looks at 1024). Order, per WHATWG: BOM > transport charset > meta prescan >
 * default. A label nobody can decode (unknown to the table and to iconv) is
 * skipped, as the spec skips an unknown label. A meta naming UTF-16 means
 * UTF-8 (the document would not have been readable ASCII otherwise).
 * `transport` may be NULL. Writes the canonical name ("UTF-8",
 * "windows-1252", "UTF-16LE", an iconv name ...) into name[CHARSET_NAME_MAX],
 * and the BOM length to skip into *bom_len. Returns the source.
 */
charset_source_t charset_sniff(const char *doc, size_t len, const char *transport,
                               char name[CHARSET_NAME_MAX], size_t *bom_len);

/**
 * Canonical name for an encoding label (WHATWG labels: "latin1",
 * "iso-8859-1" and "us-ascii" mean windows-1252; case and surrounding
 * whitespace ignored). Writes into name; HERALD_EUNSUPPORTED when neither the
 * table nor iconv knows it.
 */
int charset_canonical(const char *label, size_t label_len, char name[CHARSET_NAME_MAX]);

/**
 * Transcode in[0..len) from `name` (a canonical name) to UTF-8. Undecodable
 * bytes become U+FFFD, never an error. *out is malloc'd (NUL-terminated, the
 * caller frees it), *out_len excludes the NUL. 0, HERALD_EUNSUPPORTED,
 * HERALD_ENOMEM.
 */
int charset_to_utf8(const char *name, const char *in, size_t len, char **out, size_t *out_len);

/**
 * Percent-encode the non-ASCII characters of a URL query the way a document
 * in encoding `name` does (WHATWG URL: the query is encoded in the
 * document's encoding, except for UTF-8/UTF-16 documents, which use UTF-8):
 * in[0..len) is UTF-8; each non-ASCII character becomes the %XX of its bytes
 * in `name`, or of "&#N;" when `name` cannot represent it. ASCII is copied.
 * *out is malloc'd and NUL-terminated. 0, HERALD_EUNSUPPORTED, HERALD_ENOMEM.
 */
int charset_encode_query(const char *name, const char *in, size_t len, char **out);

#endif
