/*
 * parser.c -- HTTP/1.1 request-head parser (RFC 9112); contract in parser.h.
 *
 * Theory of operation
 * -------------------
 * The parser keeps no state of its own: cp_parse_request() starts at buf[0]
 * every time.  A head that arrives a line at a time is parsed with
 * cp_parse_request_from(), whose caller keeps a small cp_head_progress (the
 * offset of the first unparsed line and the facts gathered so far) beside
 * the request and header spans found so far; each call then looks only at
 * the lines that are new, so a slow head costs one pass, not one pass per
 * line (a client sending a 64 KiB head in 100 packets would otherwise make
 * us scan some 3 MB).  A caller that also follows the advice in parser.h (do
 * not call again until a '\n' arrives at or after incomplete_line_start, or
 * until the partial line outgrows its limit) calls at most once per line.
 *
 * The head is processed one line at a time.  find_line() locates the end of
 * the next line with memchr('\n') over a window no longer than the longest
 * line the current limit allows (limit + CRLF), so a request with no line end
 * is rejected as soon as it is certainly too long and we never scan more than
 * a limit's worth of bytes per line.  A complete line is then validated by a
 * tight loop over a 256-entry class table.  Lines are handled in order, so
 * the error reported is always the one in the earliest line; only the last,
 * incomplete line is looked at for errors that can already be proved (too
 * long, a CR followed by something other than LF).
 *
 * Because every check is made on a line that is complete, or on a partial
 * line that no continuation could make valid, a prefix of an acceptable head
 * is never rejected: it is always CP_INCOMPLETE.  The fuzz target asserts
 * exactly this.
 *
 * The semantic headers (Host, Content-Length, Transfer-Encoding, Connection,
 * Upgrade, Expect) are recognised as they are stored, so the caller needs no
 * second pass.  Checks that need the whole head (Host missing, TE with CL,
 * the transfer-coding verdict) are made once, after the empty line.
 *
 * Offsets are uint32_t.  We never look at more than MAX_HEAD bytes (nor
 * past the head limit, lim->max_head_size, when one is set), and a line that
 * would reach past them is reported as too large (414/431), so no span can
 * overflow whatever len is.
 */
#include "parser.h"

#include <string.h>

#include "chars.h"


/* ---- constants ---------------------------------------------------------- */

/* Empty lines tolerated before the request line (RFC 9112 2.2 says "at least
   one"); the next one is a 400, so a client cannot keep us skipping. */
#define MAX_LEADING_EMPTY_LINES 8

/* Bytes of the buffer we ever look at: every offset and every offset+length
   fits in a uint32_t, and the consumed count fits in a ptrdiff_t. */
#define MAX_HEAD                                                              \
    ((size_t)UINT32_MAX < (size_t)PTRDIFF_MAX ? (size_t)UINT32_MAX            \
                                              : (size_t)PTRDIFF_MAX)

/* Largest Content-Length we accept: 2^62. */
#define MAX_CONTENT_LENGTH ((uint64_t)1 << 62)

/* ---- small helpers ------------------------------------------------------ */


/* a[0..n) equals the lower-case ASCII string lower[0..n), ignoring case. */
static inline int ci_equal(const unsigned char *a, const char *lower, size_t n)
{
    return cp_ci_equal((const char *)a, lower, n);
}

static inline cp_span make_span(size_t off, size_t len)
{
    cp_span s = {(uint32_t)off, (uint32_t)len};
    return s;
}

/*
 * Skip over bytes that are >= lo (lo <= 0x80) and not DEL, eight at a time
 * (the "hasless" and "haszero" tricks from Bit Twiddling Hacks, which tell
 * exactly whether any byte of a word qualifies, in either byte order).  It
 * stops at the word holding the first byte that does not qualify -- or
 * before the tail shorter than a word -- and leaves the rest to the byte
 * loop that follows, which has the final say.  memcpy compiles to one load.
 */
static inline size_t skip_words(const unsigned char *p, size_t i, size_t e, unsigned lo)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

    while (e - i >= 8) {
        uint64_t x, d;
        memcpy(&x, p + i, 8);
        d = x ^ (ones * 0x7f);
        if ((((x - ones * lo) & ~x) | ((d - ones) & ~d)) & highs)
            break;
        i += 8;
    }
    return i;
}

static ptrdiff_t fail(cp_request *out, int status, const char *reason)
{
    out->error_status = status;
    out->error_reason = reason;
    return CP_ERROR;
}

/* ---- line framing ------------------------------------------------------- */

enum {
    LINE_OK,         /* *eol is the offset of the CR of the CRLF */
    LINE_INCOMPLETE, /* no line end yet, and the line may still be valid */
    LINE_BARE_LF,
    LINE_BARE_CR,
    LINE_TOO_LONG,  /* content certainly longer than max */
    LINE_TOO_LARGE, /* the line would reach past MAX_HEAD or the head limit */
};

/*
 * Find the line that starts at buf[ls] and whose content (without CRLF) may be
 * at most max bytes long.  end is the usable length (<= MAX_HEAD and the head
 * limit), len the real one.  Only the first max + 2 bytes are searched, so an
 * endless line costs a bounded scan.
 */
static int find_line(const char *buf, size_t ls, size_t end, size_t len, size_t max,
                     size_t *eol)
{
    size_t avail = end - ls;
    size_t window = max < SIZE_MAX - 2 ? max + 2 : SIZE_MAX;
    size_t scan = avail < window ? avail : window;
    const char *lf = scan > 0 ? memchr(buf + ls, '\n', scan) : NULL;

    if (lf != NULL) {
        size_t i = (size_t)(lf - buf);
        if (i == ls || buf[i - 1] != '\r')
            return LINE_BARE_LF;
        *eol = i - 1; /* content <= scan - 2 <= max */
        return LINE_OK;
    }
    /* A CR with a byte after it is bare: that byte is not LF (memchr said so). */
    if (scan > 1 && memchr(buf + ls, '\r', scan - 1) != NULL)
        return LINE_BARE_CR;
    /* A CR in the last position may yet be the start of the CRLF. */
    size_t content = scan;
    if (scan > 0 && buf[ls + scan - 1] == '\r')
        content--;
    if (content > max)
        return LINE_TOO_LONG;
    if (len > end)
        return LINE_TOO_LARGE;
    return LINE_INCOMPLETE;
}

/* Turn a find_line() failure into the parser's result. */
static ptrdiff_t line_failure(cp_request *out, int r, size_t ls, size_t max,
                              int too_long_status)
{
    switch (r) {
    case LINE_INCOMPLETE:
        out->incomplete_line_start = ls;
        out->incomplete_line_max = max < SIZE_MAX ? max + 1 : SIZE_MAX;
        return CP_INCOMPLETE;
    case LINE_BARE_LF:
        return fail(out, 400, "bare LF (line ends must be CRLF)");
    case LINE_BARE_CR:
        return fail(out, 400, "bare CR (not followed by LF)");
    case LINE_TOO_LONG:
        return fail(out, too_long_status,
                    too_long_status == 414 ? "request line too long"
                                           : "header field line too long");
    default:
        return fail(out, too_long_status, "request head too large");
    }
}

/* ---- request line ------------------------------------------------------- */

int cp_method_id(const char *method, size_t n)
{
    const unsigned char *m = (const unsigned char *)method;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(m, lit, sizeof(lit) - 1) == 0)
    switch (n) {
    case 3:
        if (IS("GET"))
            return CP_METHOD_GET;
        if (IS("PUT"))
            return CP_METHOD_PUT;
        break;
    case 4:
        if (IS("POST"))
            return CP_METHOD_POST;
        if (IS("HEAD"))
            return CP_METHOD_HEAD;
        break;
    case 5:
        if (IS("PATCH"))
            return CP_METHOD_PATCH;
        if (IS("TRACE"))
            return CP_METHOD_TRACE;
        break;
    case 6:
        if (IS("DELETE"))
            return CP_METHOD_DELETE;
        break;
    case 7:
        if (IS("OPTIONS"))
            return CP_METHOD_OPTIONS;
        break;
    default:
        break;
    }
    return CP_METHOD_OTHER;
#undef IS
}

/* Split buf[from..te) at the first '?' into path and query. */
static void split_path_query(const char *buf, size_t from, size_t te, cp_request *out)
{
    const char *q = memchr(buf + from, '?', te - from);
    if (q == NULL) {
        out->path = make_span(from, te - from);
        out->query = make_span(te, 0);
    } else {
        size_t qi = (size_t)(q - buf);
        out->path = make_span(from, qi - from);
        out->query = make_span(qi + 1, te - qi - 1);
    }
}

/* The request line is buf[s..e), e being the offset of its CR. */
static ptrdiff_t parse_request_line(const char *buf, size_t s, size_t e,
                                    cp_request *out)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = s;

    /* method SP */
    while (i < e && (cp_char_class[p[i]] & CC_TOKEN))
        i++;
    if (i == e || p[i] != ' ' || i == s) {
        if (i < e && p[i] == '\r')
            return fail(out, 400, "bare CR (not followed by LF)");
        return fail(out, 400, i < e && p[i] == ' ' ? "empty method" : "invalid method");
    }
    out->method = make_span(s, i - s);

    /* request-target SP */
    size_t ts = ++i;
    i = skip_words(p, i, e, 0x21);
    while (i < e && (cp_char_class[p[i]] & CC_TARGET))
        i++;
    if (i == e || p[i] != ' ' || i == ts) {
        if (i < e && p[i] == '\r')
            return fail(out, 400, "bare CR (not followed by LF)");
        return fail(out, 400,
                    i == e   ? "missing HTTP version"
                    : i == ts ? "empty request-target (or extra space)"
                              : "invalid character in request-target");
    }
    size_t te = i;
    out->target = make_span(ts, te - ts);

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then the line ends */
    size_t vs = i + 1;
    if (e - vs != 8 || memcmp(p + vs, "HTTP/", 5) != 0 ||
        (unsigned)(p[vs + 5] - '0') > 9 || p[vs + 6] != '.' ||
        (unsigned)(p[vs + 7] - '0') > 9) {
        for (i = vs; i < e; i++) {
            if (p[i] == '\r')
                return fail(out, 400, "bare CR (not followed by LF)");
        }
        return fail(out, 400, "malformed HTTP version");
    }
    if (p[vs + 5] != '1' || p[vs + 7] > '1')
        return fail(out, 505, "HTTP version not supported");
    out->http_minor = p[vs + 7] - '0';

    size_t mlen = out->method.len;
    out->method_id = cp_method_id((const char *)(p + s), mlen);
    if (mlen == 7 && memcmp(p + s, "CONNECT", 7) == 0)
        return fail(out, 501, "CONNECT is not supported");

    /* request-target forms (RFC 9112 3.2) */
    size_t tlen = te - ts;
    if (p[ts] == '/') { /* origin-form */
        split_path_query(buf, ts, te, out);
        return 0;
    }
    if (p[ts] == '*') { /* asterisk-form */
        if (tlen != 1 || out->method_id != CP_METHOD_OPTIONS)
            return fail(out, 400, "asterisk-form is only for OPTIONS *");
        out->path = make_span(ts, 1);
        out->query = make_span(te, 0);
        out->flags |= CP_F_ASTERISK_FORM;
        return 0;
    }
    /* absolute-form: "http://" or "https://" authority [path] ["?" query] */
    size_t a;
    if (tlen >= 7 && ci_equal(p + ts, "http://", 7))
        a = ts + 7;
    else if (tlen >= 8 && ci_equal(p + ts, "https://", 8))
        a = ts + 8;
    else
        return fail(out, 400, "invalid request-target");
    size_t ae = a;
    while (ae < te && p[ae] != '/' && p[ae] != '?')
        ae++;
    if (ae == a)
        return fail(out, 400, "empty authority in absolute-form");
    if (memchr(p + a, '@', ae - a) != NULL)
        return fail(out, 400, "userinfo in absolute-form");
    /* path may be empty (len 0); the caller substitutes "/" */
    split_path_query(buf, ae, te, out);
    out->flags |= CP_F_ABSOLUTE_FORM;
    return 0;
}

/* ---- semantic headers --------------------------------------------------- */

typedef cp_head_facts head_facts;

/*
 * Content-Length = 1*DIGIT, or a list of identical ones ("5, 5", RFC 9110
 * 8.6).  Empty list elements are not tolerated here: "5," is a 400.
 */
static int parse_content_length(const unsigned char *v, size_t n, int64_t *result)
{
    uint64_t first = 0;
    int have = 0;
    size_t i = 0;

    for (;;) {
        uint64_t x = 0;
        size_t start = i;
        while (i < n && (unsigned)(v[i] - '0') <= 9) {
            unsigned d = (unsigned)(v[i] - '0');
            if (x > (MAX_CONTENT_LENGTH - d) / 10)
                return -1;
            x = x * 10 + d;
            i++;
        }
        if (i == start || (have && x != first))
            return -1;
        first = x;
        have = 1;
        while (i < n && cp_is_ows(v[i]))
            i++;
        if (i == n)
            break;
        if (v[i] != ',')
            return -1;
        i++;
        while (i < n && cp_is_ows(v[i]))
            i++;
    }
    *result = (int64_t)first;
    return 0;
}

/*
 * Transfer-Encoding = #transfer-coding; transfer-coding = token *( OWS ";" OWS
 * transfer-parameter ).  Record what we see; the verdict is given in
 * judge_head().  Parameters of a coding other than chunked are not looked at:
 * the coding is unknown anyway.
 */
static void scan_transfer_encoding(const unsigned char *v, size_t n, head_facts *f)
{
    size_t i = 0;

    f->te_fields++;
    if (n == 0) {
        f->te_bad = 1;
        return;
    }
    while (i < n) {
        while (i < n && (cp_is_ows(v[i]) || v[i] == ','))
            i++; /* empty elements are allowed (RFC 9110 5.6.1) */
        if (i == n)
            break;
        size_t ts = i;
        while (i < n && (cp_char_class[v[i]] & CC_TOKEN))
            i++;
        size_t tl = i - ts;
        while (i < n && cp_is_ows(v[i]))
            i++;
        int params = i < n && v[i] == ';';
        if (tl == 0 || (i < n && v[i] != ',' && !params)) {
            f->te_bad = 1;
            return;
        }
        if (tl == 7 && ci_equal(v + ts, "chunked", 7)) {
            if (params)
                f->te_chunked_param = 1;
            else
                f->te_chunked++;
        } else {
            f->te_unknown = 1;
        }
        if (params) { /* skip to the next element */
            while (i < n && v[i] != ',')
                i++;
        }
    }
}

/* Connection = #connection-option; unknown options are ignored. */
static unsigned scan_connection(const unsigned char *v, size_t n)
{
    unsigned flags = 0;
    size_t pos = 0, s, len;

    while (cp_list_next((const char *)v, n, &pos, &s, &len)) {
        if (len == 5 && ci_equal(v + s, "close", 5))
            flags |= CP_F_CONN_CLOSE;
        else if (len == 10 && ci_equal(v + s, "keep-alive", 10))
            flags |= CP_F_CONN_KEEP_ALIVE;
    }
    return flags;
}

/* Look at one stored field; 0, or CP_ERROR with out->error_* set. */
static ptrdiff_t note_header(const unsigned char *p, const cp_header *h,
                             cp_request *out, head_facts *f)
{
    const unsigned char *name = p + h->name.off;
    const unsigned char *v = p + h->value.off;
    size_t vl = h->value.len;

    switch (h->name.len) {
    case 2:
        if (ci_equal(name, "te", 2) && cp_list_has_token((const char *)v, vl, "trailers", 8))
            out->flags |= CP_F_TE_TRAILERS;
        break;
    case 4:
        if (ci_equal(name, "host", 4)) {
            if (++f->hosts > 1)
                return fail(out, 400, "more than one Host field");
            for (size_t i = 0; i < vl; i++) {
                if (!(cp_char_class[v[i]] & CC_HOST))
                    return fail(out, 400, "invalid Host");
            }
        }
        break;
    case 6:
        if (ci_equal(name, "expect", 6) && vl == 12 && ci_equal(v, "100-continue", 12))
            out->flags |= CP_F_EXPECT_CONTINUE;
        break;
    case 7:
        if (ci_equal(name, "upgrade", 7))
            out->flags |= CP_F_UPGRADE;
        break;
    case 9:
        if (ci_equal(name, "forwarded", 9))
            out->flags |= CP_F_PROXY_HEADERS;
        break;
    case 10:
        if (ci_equal(name, "connection", 10))
            out->flags |= scan_connection(v, vl);
        break;
    case 14:
        if (ci_equal(name, "content-length", 14)) {
            int64_t cl;
            if (parse_content_length(v, vl, &cl) != 0)
                return fail(out, 400, "invalid Content-Length");
            if (out->content_length >= 0 && out->content_length != cl)
                return fail(out, 400, "conflicting Content-Length fields");
            out->content_length = cl;
        }
        break;
    case 15:
        if (ci_equal(name, "x-forwarded-for", 15))
            out->flags |= CP_F_PROXY_HEADERS;
        break;
    case 16:
        if (ci_equal(name, "x-forwarded-host", 16))
            out->flags |= CP_F_PROXY_HEADERS;
        break;
    case 17:
        if (ci_equal(name, "transfer-encoding", 17))
            scan_transfer_encoding(v, vl, f);
        else if (ci_equal(name, "x-forwarded-proto", 17))
            out->flags |= CP_F_PROXY_HEADERS;
        break;
    default:
        break;
    }
    return 0;
}

/* Checks that need the whole head. */
static ptrdiff_t judge_head(cp_request *out, const head_facts *f)
{
    if (out->http_minor == 1 && f->hosts == 0)
        return fail(out, 400, "missing Host in HTTP/1.1 request");
    if (f->te_fields == 0)
        return 0;
    if (out->http_minor == 0)
        return fail(out, 400, "Transfer-Encoding in HTTP/1.0 request");
    if (out->content_length >= 0)
        return fail(out, 400, "both Content-Length and Transfer-Encoding");
    if (f->te_bad)
        return fail(out, 400, "malformed Transfer-Encoding");
    if (f->te_unknown)
        return fail(out, 501, "unsupported transfer coding");
    if (f->te_chunked_param)
        return fail(out, 400, "parameters on chunked");
    if (f->te_chunked != 1)
        return fail(out, 400,
                    f->te_chunked ? "chunked applied more than once"
                                  : "Transfer-Encoding without chunked");
    /* chunked is the only coding, so it is last */
    out->flags |= CP_F_CHUNKED;
    return 0;
}

/* ---- field lines -------------------------------------------------------- */

/* One field line buf[s..e), e being the offset of its CR (e > s). */
static ptrdiff_t parse_field_line(const char *buf, size_t s, size_t e,
                                  const cp_limits *lim, cp_request *out,
                                  cp_header *headers, head_facts *f)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = s;

    if (cp_is_ows(p[s]))
        return fail(out, 400, "obs-fold (field line starts with whitespace)");
    if (out->num_headers >= lim->max_headers)
        return fail(out, 431, "too many header fields");

    while (i < e && (cp_char_class[p[i]] & CC_TOKEN))
        i++;
    if (i == s || i == e || p[i] != ':') {
        const char *why = i == e           ? "field line without a colon"
                          : p[i] == '\r'   ? "bare CR (not followed by LF)"
                          : cp_is_ows(p[i])   ? "whitespace between field name and colon"
                          : i == s && p[i] == ':' ? "empty field name"
                                                  : "invalid character in field name";
        return fail(out, 400, why);
    }
    size_t ne = i++;
    while (i < e && cp_is_ows(p[i]))
        i++;
    size_t vs = i;
    for (i = skip_words(p, i, e, 0x20); i < e; i++) {
        if (!(cp_char_class[p[i]] & CC_VALUE))
            return fail(out, 400, p[i] == '\r' ? "bare CR (not followed by LF)"
                                               : "invalid character in field value");
    }
    size_t ve = e;
    while (ve > vs && cp_is_ows(p[ve - 1]))
        ve--;

    cp_header *h = &headers[out->num_headers++];
    h->name = make_span(s, ne - s);
    h->value = make_span(vs, ve - vs);
    return note_header(p, h, out, f);
}

/* ---- entry points ------------------------------------------------------- */

ptrdiff_t cp_parse_request(const char *buf, size_t len, const cp_limits *lim,
                           cp_request *out, cp_header *headers)
{
    cp_head_progress progress = {0};
    return cp_parse_request_from(buf, len, lim, out, headers, &progress);
}

ptrdiff_t cp_parse_request_from(const char *buf, size_t len, const cp_limits *lim,
                                cp_request *out, cp_header *headers,
                                cp_head_progress *progress)
{
    size_t end = len < MAX_HEAD ? len : MAX_HEAD;
    size_t pos = progress->pos, eol = 0;
    int r;

    /* the whole-head limit: nothing past it can belong to an acceptable head */
    if (lim->max_head_size > 0 && end > lim->max_head_size)
        end = lim->max_head_size;

    if (!progress->in_fields) {
        /* Request line, after at most MAX_LEADING_EMPTY_LINES empty lines. */
        memset(out, 0, sizeof(*out));
        out->content_length = -1;
        for (;;) {
            r = find_line(buf, pos, end, len, lim->max_request_line, &eol);
            if (r == LINE_INCOMPLETE)
                progress->pos = pos;
            if (r != LINE_OK)
                return line_failure(out, r, pos, lim->max_request_line, 414);
            if (eol > pos)
                break;
            if (progress->empty_lines == MAX_LEADING_EMPTY_LINES)
                return fail(out, 400, "too many empty lines before the request line");
            progress->empty_lines++;
            pos = eol + 2;
        }
        if (parse_request_line(buf, pos, eol, out) != 0)
            return CP_ERROR;
        pos = eol + 2;
        progress->in_fields = 1;
    }

    /* Field lines, up to the empty line. */
    for (;;) {
        r = find_line(buf, pos, end, len, lim->max_header_size, &eol);
        if (r == LINE_INCOMPLETE)
            progress->pos = pos;
        if (r != LINE_OK)
            return line_failure(out, r, pos, lim->max_header_size, 431);
        if (eol == pos)
            break;
        if (parse_field_line(buf, pos, eol, lim, out, headers, &progress->facts) != 0)
            return CP_ERROR;
        pos = eol + 2;
    }
    if (judge_head(out, &progress->facts) != 0)
        return CP_ERROR;
    return (ptrdiff_t)(eol + 2);
}

/*
 * An incomplete line is at most its content (<= the larger limit) plus the CR
 * of its CRLF; one byte more without a '\n' is certainly an error.  So every
 * CP_INCOMPLETE satisfies len - incomplete_line_start <= cp_longest_line(lim).
 */
size_t cp_longest_line(const cp_limits *lim)
{
    size_t m = lim->max_request_line > lim->max_header_size ? lim->max_request_line
                                                            : lim->max_header_size;
    return m < SIZE_MAX ? m + 1 : SIZE_MAX;
}
