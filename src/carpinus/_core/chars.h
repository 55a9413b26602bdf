/*
 * chars.h -- the bytes of HTTP (RFC 9110): one class table and the small
 * ASCII helpers, shared by the request parser, the chunked decoder and the
 * response writer.  No Python, no allocation.
 */
#ifndef CARPINUS_CHARS_H
#define CARPINUS_CHARS_H

#include <stddef.h>

/* cp_char_class[b]: the classes byte b belongs to. */
#define CC_TOKEN 0x01  /* tchar (RFC 9110 5.6.2) */
#define CC_VALUE 0x02  /* field-value byte: HTAB, SP, VCHAR, obs-text */
#define CC_TARGET 0x04 /* request-target byte: VCHAR, obs-text */
#define CC_HOST 0x08   /* Host byte: unreserved, pct, sub-delims, ':', '[', ']' */
#define CC_HEX 0x10    /* HEXDIG */

extern const unsigned char cp_char_class[256];

static inline int cp_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char cp_ascii_lower(unsigned char c)
{
    return (unsigned char)(c + ((unsigned)(c - 'A') < 26u ? 32 : 0));
}

/* a[0..n) equals the lowercase ASCII string lower[0..n), ignoring case. */
static inline int cp_ci_equal(const char *a, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cp_ascii_lower((unsigned char)a[i]) != (unsigned char)lower[i]) {
            return 0;
        }
    }
    return 1;
}

/* Is p[0..n) the lowercase name `lower` (ln bytes), ignoring case? */
static inline int cp_name_is(const char *p, size_t n, const char *lower, size_t ln)
{
    return n == ln && cp_ci_equal(p, lower, n);
}

/* The next element of a comma-separated list v[*pos..n) (RFC 9110 5.6.1:
   empty elements skipped, OWS around each trimmed): *start and *len say
   where it is.  Returns 0 once the list is exhausted. */
static inline int cp_list_next(const char *v, size_t n, size_t *pos, size_t *start,
                               size_t *len)
{
    size_t i = *pos;
    while (i < n && (cp_is_ows((unsigned char)v[i]) || v[i] == ',')) {
        i++;
    }
    if (i == n) {
        *pos = i;
        return 0;
    }
    size_t s = i;
    while (i < n && v[i] != ',') {
        i++;
    }
    size_t e = i;
    while (e > s && cp_is_ows((unsigned char)v[e - 1])) {
        e--;
    }
    *pos = i;
    *start = s;
    *len = e - s;
    return 1;
}

/* Does the comma-separated list v[0..n) hold `token` (case-insensitive)? */
static inline int cp_list_has_token(const char *v, size_t n, const char *token, size_t tn)
{
    size_t pos = 0, start, len;
    while (cp_list_next(v, n, &pos, &start, &len)) {
        if (cp_name_is(v + start, len, token, tn)) {
            return 1;
        }
    }
    return 0;
}

#endif /* CARPINUS_CHARS_H */
