/*
 * chunked.c -- the chunked transfer coding decoder (RFC 9112 7.1); contract
 * in parser.h.
 *
 * Theory of operation
 * -------------------
 * A chunked body is a sequence of lines with runs of opaque data between
 * them:
 *
 *     chunk-size [ BWS ";" chunk-ext ] CRLF      <- size line
 *     <size bytes of data> CRLF                  <- repeated while size > 0
 *     0 [ chunk-ext ] CRLF                       <- last chunk
 *     *( field-line CRLF )                       <- trailer section
 *     CRLF
 *
 * Unlike the head parser, this decoder keeps its place in a cp_chunked, so it
 * can be fed the body in pieces split anywhere -- in the middle of a size, of
 * a CRLF, of a trailer name -- and never looks at a byte twice.  That is what
 * the state is for: it says what the next byte may be.
 *
 * Data is the only thing that is not read byte by byte.  In S_DATA we know
 * exactly how many bytes belong to the chunk (st->remaining), so we hand out
 * a span of as many of them as the buffer holds, without waiting for the rest
 * of the chunk, and return to the caller.  Everything else -- sizes,
 * extensions, CRLFs, trailers -- is a line, and lines are driven by one
 * table, `transition`, below: the next state is transition[state][class of
 * the byte].  A cell is either a state or an E_* error, so every rule of the
 * grammar, and the reason for rejecting a byte, can be read off the table in
 * one place.  The few things a table cannot say are done in cp_chunked_decode
 * right after the lookup ("actions"):
 *
 *   - a hex digit in the size accumulates into st->remaining, which must
 *     stay <= 2^62 (this also bounds the number of significant digits: 16);
 *   - every byte of a line's content counts towards its length limit, the
 *     size line's (CP_CHUNK_LINE_MAX, 400) or a trailer line's
 *     (min(max_header_size, CP_CHUNK_LINE_MAX), 431); leading zeros count;
 *   - the first byte of a trailer name counts a trailer field (431 over
 *     max_headers);
 *   - the LF of the size line goes to S_DATA, or to the trailer section when
 *     the size was 0;
 *   - the LF after the trailer section finishes the message.
 *
 * Strictness: CR is only allowed as the first half of CRLF (any other byte
 * after it is "bare CR") and LF only as the second half ("bare LF").
 * chunk-size is 1*HEXDIG with nothing before it.  Whitespace after the size is
 * only allowed before a ';' (BWS).  Chunk extensions are discarded and
 * checked loosely: any visible byte, SP or HTAB, no other control character.
 * Trailer fields are checked like header fields (token ":" value, no
 * whitespace before the colon, no obs-fold) and discarded.
 *
 * Errors are sticky: after CP_CHUNK_ERROR every call returns it again, as
 * after CP_CHUNK_DONE every call returns CP_CHUNK_DONE, consuming nothing.
 */
#include "parser.h"

#include "chars.h"

/* ---- states ------------------------------------------------------------- */

enum {
    S_SIZE_START = 0, /* first byte of a size line: must be a hex digit */
    S_SIZE,           /* in the hex digits */
    S_SIZE_WS,        /* BWS after the size: only ';' may follow */
    S_EXT,            /* after ';': extensions, up to CR */
    S_SIZE_LF,        /* saw the CR of the size line */
    S_DATA,           /* st->remaining data bytes to go (not table driven) */
    S_DATA_CR,        /* data done: CR must follow */
    S_DATA_LF,        /* ... then LF */
    S_TRAILER_START,  /* first byte of a trailer line, or CR of the last one */
    S_TRAILER_NAME,   /* in a trailer field name */
    S_TRAILER_VALUE,  /* after the colon, up to CR */
    S_TRAILER_LF,     /* saw the CR of a trailer line */
    S_FINAL_LF,       /* saw the CR of the empty line ending the trailers */
    S_DONE,
    S_ERROR,
    N_STATES
};

/* Errors share the cell type with states; they start at E_FIRST. */
enum {
    E_FIRST = 32,
    E_SIZE = E_FIRST,  /* invalid chunk size */
    E_SIZE_WS,         /* whitespace after the size without ';' */
    E_EXT,             /* control character in a chunk extension */
    E_BARE_CR,
    E_BARE_LF,
    E_DATA_CRLF,  /* missing CRLF after chunk data */
    E_OBS_FOLD,   /* trailer line starting with whitespace */
    E_NAME,       /* invalid character in a trailer name */
    E_EMPTY_NAME, /* trailer line starting with ':' */
    E_WS_COLON,   /* whitespace between a trailer name and the colon */
    E_NO_COLON,   /* trailer line without a colon */
    E_VALUE,      /* control character in a trailer value */
    E_OVERFLOW,   /* chunk size over 2^62 */
    E_SIZE_LINE,  /* size line over CP_CHUNK_LINE_MAX */
    E_TRAILER_LINE, /* trailer line over its limit */
    E_TRAILERS,     /* more than max_headers trailer fields */
    E_STATE,        /* st->state is not one of ours (never init'ed?) */
    E_LAST
};

static const struct {
    int status;
    const char *reason;
} errors[E_LAST - E_FIRST] = {
    [E_SIZE - E_FIRST] = {400, "invalid chunk size"},
    [E_SIZE_WS - E_FIRST] = {400, "whitespace after chunk size"},
    [E_EXT - E_FIRST] = {400, "invalid character in chunk extension"},
    [E_BARE_CR - E_FIRST] = {400, "bare CR in chunked body (not followed by LF)"},
    [E_BARE_LF - E_FIRST] = {400, "bare LF in chunked body (line ends must be CRLF)"},
    [E_DATA_CRLF - E_FIRST] = {400, "missing CRLF after chunk data"},
    [E_OBS_FOLD - E_FIRST] = {400, "obs-fold in trailer section"},
    [E_NAME - E_FIRST] = {400, "invalid character in trailer field name"},
    [E_EMPTY_NAME - E_FIRST] = {400, "empty trailer field name"},
    [E_WS_COLON - E_FIRST] = {400, "whitespace between trailer field name and colon"},
    [E_NO_COLON - E_FIRST] = {400, "trailer field line without a colon"},
    [E_VALUE - E_FIRST] = {400, "invalid character in trailer field value"},
    [E_OVERFLOW - E_FIRST] = {400, "chunk size too large"},
    [E_SIZE_LINE - E_FIRST] = {400, "chunk size line too long"},
    [E_TRAILER_LINE - E_FIRST] = {431, "trailer field line too long"},
    [E_TRAILERS - E_FIRST] = {431, "too many trailer fields"},
    [E_STATE - E_FIRST] = {400, "chunked decoder in an invalid state"},
};

/* ---- byte classes ------------------------------------------------------- */

enum {
    HX, /* HEXDIG (also a tchar) */
    TK, /* other tchar */
    WS, /* SP, HTAB */
    SC, /* ';' */
    CO, /* ':' */
    VI, /* other VCHAR, obs-text */
    CT, /* other control characters, DEL */
    CR,
    LF,
    N_CLASSES
};

/* The class of a byte, from the shared table (chars.h). */
static inline unsigned char byte_class_of(unsigned char c)
{
    switch (c) {
    case '\r':
        return CR;
    case '\n':
        return LF;
    case ';':
        return SC;
    case ':':
        return CO;
    case ' ':
    case '\t':
        return WS;
    default:
        break;
    }
    unsigned f = cp_char_class[c];
    return (f & CC_HEX) ? HX : (f & CC_TOKEN) ? TK : (f & CC_VALUE) ? VI : CT;
}

/* ---- the transition table ----------------------------------------------- */

/* Short names so that the table reads as a grid. */
#define sSIZE S_SIZE
#define sSWS S_SIZE_WS
#define sEXT S_EXT
#define sSLF S_SIZE_LF
#define sDATA S_DATA
#define sDLF S_DATA_LF
#define sSIZ0 S_SIZE_START
#define sTNAM S_TRAILER_NAME
#define sTVAL S_TRAILER_VALUE
#define sTLF S_TRAILER_LF
#define sTST S_TRAILER_START
#define sFLF S_FINAL_LF
#define sDONE S_DONE
#define eSIZ E_SIZE
#define eSWS E_SIZE_WS
#define eEXT E_EXT
#define eCR E_BARE_CR
#define eLF E_BARE_LF
#define eDAT E_DATA_CRLF
#define eFLD E_OBS_FOLD
#define eNAM E_NAME
#define eEMP E_EMPTY_NAME
#define eWSC E_WS_COLON
#define eNOC E_NO_COLON
#define eVAL E_VALUE

/* clang-format off */
static const unsigned char transition[N_STATES][N_CLASSES] = {
    /*                   HX     TK     WS     ;      :      VI     CT     CR     LF */
    [S_SIZE_START]    = {sSIZE, eSIZ,  eSIZ,  eSIZ,  eSIZ,  eSIZ,  eSIZ,  eSIZ,  eSIZ},
    [S_SIZE]          = {sSIZE, eSIZ,  sSWS,  sEXT,  eSIZ,  eSIZ,  eSIZ,  sSLF,  eLF},
    [S_SIZE_WS]       = {eSWS,  eSWS,  sSWS,  sEXT,  eSWS,  eSWS,  eSWS,  eSWS,  eSWS},
    [S_EXT]           = {sEXT,  sEXT,  sEXT,  sEXT,  sEXT,  sEXT,  eEXT,  sSLF,  eLF},
    [S_SIZE_LF]       = {eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   sDATA},
    [S_DATA_CR]       = {eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  sDLF,  eDAT},
    [S_DATA_LF]       = {eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  eDAT,  sSIZ0},
    [S_TRAILER_START] = {sTNAM, sTNAM, eFLD,  eNAM,  eEMP,  eNAM,  eNAM,  sFLF,  eLF},
    [S_TRAILER_NAME]  = {sTNAM, sTNAM, eWSC,  eNAM,  sTVAL, eNAM,  eNAM,  eNOC,  eLF},
    [S_TRAILER_VALUE] = {sTVAL, sTVAL, sTVAL, sTVAL, sTVAL, sTVAL, eVAL,  sTLF,  eLF},
    [S_TRAILER_LF]    = {eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   sTST},
    [S_FINAL_LF]      = {eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   eCR,   sDONE},
    /* S_DATA, S_DONE and S_ERROR are handled before the table is consulted. */
};
/* clang-format on */

/* Which line limit a state's bytes count towards (CR and LF never count). */
enum { LINE_NONE, LINE_SIZE, LINE_TRAILER };

static const unsigned char line_kind[N_STATES] = {
    [S_SIZE_START] = LINE_SIZE,        [S_SIZE] = LINE_SIZE,
    [S_SIZE_WS] = LINE_SIZE,           [S_EXT] = LINE_SIZE,
    [S_TRAILER_START] = LINE_TRAILER,  [S_TRAILER_NAME] = LINE_TRAILER,
    [S_TRAILER_VALUE] = LINE_TRAILER,
};

/* ---- the decoder -------------------------------------------------------- */

#define MAX_CHUNK_SIZE ((uint64_t)1 << 62)

void cp_chunked_init(cp_chunked *st)
{
    st->state = S_SIZE_START;
    st->remaining = 0;
    st->line_len = 0;
    st->trailers = 0;
    st->error_status = 0;
    st->error_reason = NULL;
}

static int chunk_error(cp_chunked *st, int e)
{
    st->state = S_ERROR;
    st->error_status = errors[e - E_FIRST].status;
    st->error_reason = errors[e - E_FIRST].reason;
    return CP_CHUNK_ERROR;
}

int cp_chunked_decode(cp_chunked *st, const char *buf, size_t len,
                      const cp_limits *lim, size_t *consumed, size_t *data_off,
                      size_t *data_len)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t trailer_max = lim->max_header_size < CP_CHUNK_LINE_MAX
                             ? lim->max_header_size
                             : CP_CHUNK_LINE_MAX;
    size_t i = 0;

    *consumed = 0;
    *data_off = 0;
    *data_len = 0;
    if (st->state == S_DONE)
        return CP_CHUNK_DONE;
    if (st->state == S_ERROR)
        return CP_CHUNK_ERROR;
    if (st->state < 0 || st->state >= N_STATES)
        return chunk_error(st, E_STATE);

    while (i < len) {
        int state = st->state;

        if (state == S_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > st->remaining)
                n = (size_t)st->remaining;
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = S_DATA_CR;
            *data_off = i;
            *data_len = n;
            *consumed = i + n;
            return CP_CHUNK_DATA;
        }

        unsigned char c = p[i];
        int cls = byte_class_of(c);
        int next = transition[state][cls];
        *consumed = i; /* on error: the bytes before the offending one */
        if (next >= E_FIRST)
            return chunk_error(st, next);

        /* actions */
        if (line_kind[state] != LINE_NONE && cls != CR) {
            st->line_len++;
            if (line_kind[state] == LINE_SIZE) {
                if (st->line_len > CP_CHUNK_LINE_MAX)
                    return chunk_error(st, E_SIZE_LINE);
            } else if (st->line_len > trailer_max) {
                return chunk_error(st, E_TRAILER_LINE);
            }
        }
        switch (next) {
        case S_SIZE: { /* only a hex digit leads here */
            unsigned d = c <= '9' ? (unsigned)(c - '0')
                                  : (unsigned)((c | 0x20) - 'a' + 10);
            if (st->remaining > (MAX_CHUNK_SIZE - d) >> 4)
                return chunk_error(st, E_OVERFLOW);
            st->remaining = (st->remaining << 4) | d;
            break;
        }
        case S_DATA: /* LF of the size line */
            st->line_len = 0;
            if (st->remaining == 0)
                next = S_TRAILER_START;
            break;
        case S_SIZE_START: /* LF after the data */
        case S_TRAILER_START:
            st->line_len = 0;
            break;
        case S_TRAILER_NAME:
            if (state == S_TRAILER_START && ++st->trailers > lim->max_headers)
                return chunk_error(st, E_TRAILERS);
            break;
        case S_DONE:
            st->state = S_DONE;
            *consumed = i + 1;
            return CP_CHUNK_DONE;
        default:
            break;
        }
        st->state = next;
        i++;
    }
    *consumed = len;
    return CP_CHUNK_MORE;
}
