/*
 * wsload.c -- a WebSocket echo load generator for benchmarks/run.py.
 *
 * wrk cannot speak WebSocket, so this small client does for the WebSocket
 * workloads what wrk does for the HTTP ones: N connections, each sending one
 * message, waiting for its echo, sending the next (closed loop), for a fixed
 * time, on one thread (pin it with taskset).
 *
 *   wsload HOST PORT PATH CONNECTIONS DURATION_S TIMEOUT_S MESSAGES_FILE DEFLATE
 *
 * MESSAGES_FILE holds the text messages, one a line (newline-separated, no
 * newline inside one); connection i starts at message i and each sends them
 * in turn, so with several messages a compressor never sees the same bytes
 * twice in a row.  Every echo is checked byte for byte (after inflation).
 *
 * DEFLATE 0: no extension offered; every message's frame is encoded and
 * masked once at start-up (RFC 6455 wants a fresh masking key per frame,
 * which only matters against proxies that cache, not the server under test).
 * DEFLATE 1: permessage-deflate is offered as browsers offer it
 * ("permessage-deflate; client_max_window_bits"), and a server that does not
 * agree fails the handshake.  Every message is compressed once, after the
 * first handshake (within the window the server allowed us), each on its
 * own: a sender may always choose not to refer to earlier messages, and so
 * this client spends its time on the server's replies, not on its own
 * deflate -- with a stream per connection kept between messages it could
 * not keep up with a fast server on one core.  Each connection inflates what
 * it receives with its own stream, kept between messages as the extension
 * wants (a 32 KiB window takes whatever window the server chose).
 * Fragmented replies are joined.
 *
 * It prints one line in the format of benchmarks/wrk/report.lua:
 *   CARPINUS_BENCH_RESULT {"requests": ..., "latency_p99_us": ..., ...}
 * where a "request" is one echoed message, "non_2xx" counts failed handshakes
 * and wrong echoes, and connect/read/write/timeout count socket errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HANDSHAKE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT_VALUE "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define RBUF (256 * 1024)      /* frames of a reply, and the largest message */
#define MAX_MESSAGE (64 * 1024)

static const unsigned char mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

typedef struct {
    unsigned char *data; /* the payload */
    size_t len;
    unsigned char *frame; /* masked, uncompressed: the frame sent without deflate */
    size_t frame_len;
    unsigned char *deflated; /* masked, compressed (RSV1): the frame sent with it */
    size_t deflated_len;
} message;

typedef struct {
    int fd;
    int alive;
    double sent_at;       /* when the message in flight was sent; 0: none */
    size_t current;       /* index of the message in flight */
    const unsigned char *wbuf; /* the frame in flight */
    size_t wlen, wpos;    /* its length, bytes written so far */
    unsigned char rbuf[RBUF];
    size_t rlen;
    /* a reply being assembled from fragments */
    unsigned char *msg;
    size_t msg_len;
    int msg_compressed, msg_started, msg_binary;
    /* permessage-deflate */
    int deflate;
    z_stream rx;
    unsigned char *inflated;
} conn;

static struct {
    uint64_t messages, bytes, non_2xx, e_connect, e_read, e_write, e_timeout;
    uint32_t *lat; /* microseconds */
    size_t nlat, caplat;
} R;

static message *messages;
static size_t nmessages;
static int offer_deflate;
static int deflated_frames_made;
static unsigned char pong_frame[6] = {0x8A, 0x80, 0, 0, 0, 0}; /* empty masked pong */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What malloc, calloc or realloc returned, unless it failed: then we stop. */
static void *allocated(void *p)
{
    if (p == NULL) {
        perror("wsload: out of memory");
        exit(2);
    }
    return p;
}

static void record(double seconds)
{
    if (R.nlat == R.caplat) {
        R.caplat = R.caplat ? R.caplat * 2 : 1 << 16;
        R.lat = allocated(realloc(R.lat, R.caplat * sizeof(*R.lat)));
    }
    R.lat[R.nlat++] = (uint32_t)(seconds * 1e6);
}

/* A masked client frame (FIN, text, RSV1 when compressed) of payload[0:n]. */
static size_t encode(unsigned char *out, int rsv1, const unsigned char *payload, size_t n)
{
    size_t h = 0;
    out[h++] = (unsigned char)(0x81 | (rsv1 ? 0x40 : 0));
    if (n < 126) {
        out[h++] = 0x80 | (unsigned char)n;
    } else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            out[h++] = (unsigned char)((uint64_t)n >> (8 * i));
        }
    }
    memcpy(out + h, mask_key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) {
        out[h + i] = (unsigned char)(payload[i] ^ mask_key[i % 4]);
    }
    return h + n;
}

/* The messages, one a line of the file. */
static int load_messages(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static unsigned char text[16 * MAX_MESSAGE];
    size_t n = fread(text, 1, sizeof(text), f);
    fclose(f);
    size_t at = 0, cap = 0;
    while (at < n) {
        unsigned char *end = memchr(text + at, '\n', n - at);
        size_t len = (end ? (size_t)(end - text) : n) - at;
        if (len > MAX_MESSAGE) {
            fprintf(stderr, "wsload: a message of %zu bytes; at most %d\n", len, MAX_MESSAGE);
            return -1;
        }
        if (nmessages == cap) {
            cap = cap ? cap * 2 : 8;
            messages = allocated(realloc(messages, cap * sizeof(*messages)));
        }
        message *m = &messages[nmessages++];
        m->data = allocated(malloc(len + 1));
        memcpy(m->data, text + at, len);
        m->len = len;
        m->frame = allocated(malloc(len + 14));
        m->frame_len = encode(m->frame, 0, m->data, len);
        at += len + 1;
    }
    if (nmessages == 0) {
        fprintf(stderr, "wsload: %s holds no message\n", path);
        return -1;
    }
    return 0;
}

/* The server's permessage-deflate answer, from the response head: the
   window (in bits) we may compress with, or -1 when it did not agree. */
static int read_deflate_answer(const char *head)
{
    const char *line = strcasestr(head, "\r\nsec-websocket-extensions:");
    if (line == NULL) {
        return -1;
    }
    const char *end = strstr(line + 2, "\r\n");
    char value[512];
    size_t n = (size_t)(end - line);
    if (n >= sizeof(value)) {
        return -1;
    }
    memcpy(value, line, n);
    value[n] = 0;
    if (strcasestr(value, "permessage-deflate") == NULL) {
        return -1;
    }
    const char *bits = strcasestr(value, "client_max_window_bits=");
    int window = bits != NULL ? atoi(bits + strlen("client_max_window_bits=")) : 15;
    if (window < 9 || window > 15) {
        /* zlib's raw deflate cannot keep to 8 bits (256-byte distances); none
           of the servers measured asks for that */
        fprintf(stderr, "wsload: cannot compress with client_max_window_bits=%d\n", window);
        return -1;
    }
    return window;
}

/* Each message compressed on its own (a fresh stream, sync flush, the
   00 00 ff ff tail cut), masked, with RSV1. */
static void make_deflated_frames(int window)
{
    for (size_t i = 0; i < nmessages; i++) {
        message *m = &messages[i];
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            fprintf(stderr, "wsload: zlib initialisation failed\n");
            exit(2);
        }
        size_t cap = deflateBound(&z, m->len) + 16;
        unsigned char *compressed = allocated(malloc(cap));
        z.next_in = m->data;
        z.avail_in = (uInt)m->len;
        z.next_out = compressed;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0) {
            fprintf(stderr, "wsload: deflate failed\n");
            exit(2);
        }
        size_t n = cap - z.avail_out - 4;
        deflateEnd(&z);
        m->deflated = allocated(malloc(n + 14));
        m->deflated_len = encode(m->deflated, 1, compressed, n);
        free(compressed);
    }
}

static void start_inflater(conn *c)
{
    c->deflate = 1;
    memset(&c->rx, 0, sizeof(c->rx));
    if (inflateInit2(&c->rx, -15) != Z_OK) {
        fprintf(stderr, "wsload: zlib initialisation failed\n");
        exit(2);
    }
    c->inflated = allocated(malloc(MAX_MESSAGE + 1));
}

/* Blocking connect + handshake; then the socket becomes non-blocking. */
static int open_conn(conn *c, const struct sockaddr_in *addr, const char *host, int port,
                     const char *path, double timeout)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        R.e_connect++;
        return -1;
    }
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        R.e_connect++;
        goto fail;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " HANDSHAKE_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, host, port,
                     offer_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                     "client_max_window_bits\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof(req) || write(c->fd, req, (size_t)n) != n) {
        R.e_write++;
        goto fail;
    }
    /* read the response head; frames never arrive before our first message */
    c->rlen = 0;
    for (;;) {
        ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - 1 - c->rlen);
        if (r <= 0) {
            R.e_read++;
            goto fail;
        }
        c->rlen += (size_t)r;
        c->rbuf[c->rlen] = 0;
        char *end = strstr((char *)c->rbuf, "\r\n\r\n");
        if (end != NULL) {
            if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 ||
                strcasestr((char *)c->rbuf, ACCEPT_VALUE) == NULL) {
                R.non_2xx++;
                goto fail;
            }
            if (offer_deflate) {
                end[2] = 0; /* the head without its blank line, for the header search */
                int window = read_deflate_answer((char *)c->rbuf);
                if (window < 0) {
                    fprintf(stderr, "wsload: the server did not agree to permessage-deflate\n");
                    R.non_2xx++;
                    goto fail;
                }
                if (!deflated_frames_made) { /* one server: every answer is the same */
                    make_deflated_frames(window);
                    deflated_frames_made = 1;
                }
                start_inflater(c);
            }
            size_t head = (size_t)(end + 4 - (char *)c->rbuf);
            memmove(c->rbuf, c->rbuf + head, c->rlen - head);
            c->rlen -= head;
            break;
        }
        if (c->rlen >= RBUF - 1) {
            R.non_2xx++;
            goto fail;
        }
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->msg = allocated(malloc(RBUF));
    c->alive = 1;
    return 0;
fail:
    close(c->fd);
    c->fd = -1;
    return -1;
}

static void drop(conn *c, int epfd)
{
    if (c->alive) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->alive = 0;
    }
}

/* Write (the rest of) the frame in flight; 0 ok, -1 error. */
static int pump_write(conn *c)
{
    while (c->wpos < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            R.e_write++;
            return -1;
        }
        c->wpos += (size_t)w;
    }
    return 0;
}

/* Start writing the next message's frame; 0 ok, -1 error. */
static int send_next(conn *c, double t)
{
    const message *m = &messages[c->current];
    c->wbuf = c->deflate ? m->deflated : m->frame;
    c->wlen = c->deflate ? m->deflated_len : m->frame_len;
    c->wpos = 0;
    c->sent_at = t;
    return pump_write(c);
}

/* Watch for writability only while a frame is partly written. */
static void want_write(conn *c, int epfd)
{
    int want = c->wpos < c->wlen && c->sent_at > 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A whole reply arrived: is it the message in flight?  1 yes, 0 no. */
static int check_echo(conn *c)
{
    const message *m = &messages[c->current];
    const unsigned char *payload = c->msg;
    size_t len = c->msg_len;
    if (c->msg_compressed) {
        if (!c->deflate) {
            return 0;
        }
        static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
        memcpy(c->msg + c->msg_len, tail, 4);
        c->rx.next_in = c->msg;
        c->rx.avail_in = (uInt)(c->msg_len + 4);
        c->rx.next_out = c->inflated;
        c->rx.avail_out = MAX_MESSAGE + 1;
        int rc = inflate(&c->rx, Z_SYNC_FLUSH);
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || c->rx.avail_in != 0) {
            return 0;
        }
        payload = c->inflated;
        len = MAX_MESSAGE + 1 - c->rx.avail_out;
    }
    return len == m->len && memcmp(payload, m->data, len) == 0;
}

/* Consume whole frames from rbuf.  Returns -1 when the connection must go. */
static int parse(conn *c, int sending, double t)
{
    for (;;) {
        if (c->rlen < 2) {
            return 0;
        }
        unsigned char fin = c->rbuf[0] & 0x80, rsv1 = c->rbuf[0] & 0x40;
        unsigned char op = c->rbuf[0] & 0x0F;
        size_t len = c->rbuf[1] & 0x7F, h = 2;
        if (len == 126) {
            if (c->rlen < 4) {
                return 0;
            }
            len = (size_t)c->rbuf[2] << 8 | c->rbuf[3];
            h = 4;
        } else if (len == 127) {
            if (c->rlen < 10) {
                return 0;
            }
            len = 0;
            for (int i = 0; i < 8; i++) {
                len = len << 8 | c->rbuf[2 + i];
            }
            h = 10;
        }
        if (h + len > RBUF) {
            R.non_2xx++;
            return -1;
        }
        if (c->rlen < h + len) {
            return 0;
        }
        if (op == 0x9) { /* ping: answer with an empty pong */
            if (write(c->fd, pong_frame, sizeof(pong_frame)) != (ssize_t)sizeof(pong_frame)) {
                R.e_write++;
                return -1;
            }
        } else if (op == 0x8) { /* the server closed */
            R.e_read++;
            return -1;
        } else if (op != 0xA) {
            if (op != 0 && !c->msg_started) { /* a data frame starts a message */
                c->msg_started = 1;
                c->msg_len = 0;
                c->msg_compressed = rsv1 != 0;
                c->msg_binary = op == 0x2;
            } else if ((op == 0) != (c->msg_started != 0) || c->sent_at == 0 ||
                       c->msg_len + len + 4 > RBUF) {
                R.non_2xx++;
                return -1;
            }
            memcpy(c->msg + c->msg_len, c->rbuf + h, len);
            c->msg_len += len;
            if (fin) {
                c->msg_started = 0;
                if (c->msg_binary || c->sent_at == 0 || !check_echo(c)) {
                    R.non_2xx++;
                    return -1;
                }
                R.messages++;
                R.bytes += messages[c->current].len;
                record(t - c->sent_at);
                c->sent_at = 0;
                c->current = (c->current + 1) % nmessages;
                if (sending && send_next(c, t) < 0) {
                    return -1;
                }
            }
        }
        memmove(c->rbuf, c->rbuf + h + len, c->rlen - h - len);
        c->rlen -= h + len;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS DURATION_S TIMEOUT_S "
                        "MESSAGES_FILE DEFLATE(0|1)\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), nconn = atoi(argv[4]);
    double duration = atof(argv[5]), timeout = atof(argv[6]);
    offer_deflate = atoi(argv[8]);
    if (port <= 0 || nconn <= 0 || duration <= 0 || timeout <= 0 ||
        (offer_deflate != 0 && offer_deflate != 1)) {
        fprintf(stderr, "wsload: bad arguments\n");
        return 2;
    }
    if (load_messages(argv[7]) < 0) {
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "wsload: HOST must be an IPv4 address\n");
        return 2;
    }
    conn *conns = allocated(calloc((size_t)nconn, sizeof(conn)));

    int epfd = epoll_create1(0);
    int alive = 0;
    for (int i = 0; i < nconn; i++) {
        if (open_conn(&conns[i], &addr, host, port, path, timeout) == 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
            epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
            conns[i].current = (size_t)i % nmessages;
            alive++;
        }
    }
    double start = now(), stop = start + duration;
    for (int i = 0; i < nconn; i++) {
        conn *c = &conns[i];
        if (c->alive) {
            if (send_next(c, start) < 0) {
                drop(c, epfd);
                alive--;
            } else if (c->wpos < c->wlen) {
                want_write(c, epfd);
            }
        }
    }
    struct epoll_event events[256];
    double t = start, last_check = start;
    while (alive > 0) {
        t = now();
        if (t >= stop) {
            break;
        }
        int n = epoll_wait(epfd, events, 256, 10);
        t = now();
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c->alive) {
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                if (pump_write(c) < 0) {
                    drop(c, epfd);
                    alive--;
                    continue;
                }
                want_write(c, epfd);
            }
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                continue;
            }
            ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                R.e_read++;
                drop(c, epfd);
                alive--;
                continue;
            }
            if (r > 0) {
                c->rlen += (size_t)r;
                if (parse(c, t < stop, t) < 0 || pump_write(c) < 0) {
                    drop(c, epfd);
                    alive--;
                } else if (c->wpos < c->wlen) {
                    want_write(c, epfd);
                }
            }
        }
        if (t - last_check > 0.1) { /* messages waiting longer than the timeout */
            last_check = t;
            for (int i = 0; i < nconn; i++) {
                conn *c = &conns[i];
                if (c->alive && c->sent_at > 0 && t - c->sent_at > timeout) {
                    R.e_timeout++;
                    drop(c, epfd);
                    alive--;
                }
            }
        }
    }
    double elapsed = (t < stop ? t : stop) - start;
    static const unsigned char bye[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}; /* close 1000 */
    for (int i = 0; i < nconn; i++) {
        if (conns[i].alive) {
            if (write(conns[i].fd, bye, sizeof(bye)) < 0) {
                /* the server may be gone already; nothing to count */
            }
            close(conns[i].fd);
        }
    }
    double mean = 0;
    uint32_t p50 = 0, p99 = 0, max = 0;
    if (R.nlat > 0) {
        qsort(R.lat, R.nlat, sizeof(*R.lat), cmp_u32);
        double sum = 0;
        for (size_t i = 0; i < R.nlat; i++) {
            sum += R.lat[i];
        }
        mean = sum / (double)R.nlat;
        p50 = R.lat[R.nlat / 2];
        p99 = R.lat[(size_t)((double)(R.nlat - 1) * 0.99)];
        max = R.lat[R.nlat - 1];
    }
    printf("CARPINUS_BENCH_RESULT {\"requests\": %llu, \"duration_us\": %llu, \"bytes\": %llu, "
           "\"latency_mean_us\": %.3f, \"latency_p50_us\": %u, \"latency_p99_us\": %u, "
           "\"latency_max_us\": %u, \"non_2xx\": %llu, \"connect\": %llu, \"read\": %llu, "
           "\"write\": %llu, \"timeout\": %llu}\n",
           (unsigned long long)R.messages, (unsigned long long)(elapsed * 1e6),
           (unsigned long long)R.bytes, mean, p50, p99, max, (unsigned long long)R.non_2xx,
           (unsigned long long)R.e_connect, (unsigned long long)R.e_read,
           (unsigned long long)R.e_write, (unsigned long long)R.e_timeout);
    return 0;
}
