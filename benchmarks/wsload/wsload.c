/*
 * wsload.c -- a WebSocket echo load generator for benchmarks/run.py.
 *
 * wrk cannot speak WebSocket, so this small client does for the `websocket`
 * workload what wrk does for the HTTP ones: N connections, each sending one
 * message, waiting for its echo, sending the next (closed loop), for a fixed
 * time, on one thread (pin it with taskset).  The frame is encoded and masked
 * once at start-up; RFC 6455 wants a fresh masking key per frame, which only
 * matters against proxies that cache, not against the server under test.
 *
 *   wsload HOST PORT PATH CONNECTIONS DURATION_S TIMEOUT_S MESSAGE_BYTES
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

#define HANDSHAKE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT_VALUE "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define RBUF 65536

typedef struct {
    int fd;
    int alive;
    double sent_at;   /* when the message in flight was sent; 0: none */
    size_t wpos;      /* bytes of the frame written so far */
    unsigned char rbuf[RBUF];
    size_t rlen;
} conn;

static struct {
    uint64_t messages, bytes, non_2xx, e_connect, e_read, e_write, e_timeout;
    uint32_t *lat; /* microseconds */
    size_t nlat, caplat;
} R;

static unsigned char *frame;  /* the masked client frame */
static size_t frame_len;
static unsigned char *expect; /* the server's unmasked echo frame */
static size_t expect_len;
static unsigned char pong_frame[6] = {0x8A, 0x80, 0, 0, 0, 0}; /* empty masked pong */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void record(double seconds)
{
    if (R.nlat == R.caplat) {
        R.caplat = R.caplat ? R.caplat * 2 : 1 << 16;
        R.lat = realloc(R.lat, R.caplat * sizeof(*R.lat));
        if (R.lat == NULL) {
            perror("realloc");
            exit(2);
        }
    }
    R.lat[R.nlat++] = (uint32_t)(seconds * 1e6);
}

static size_t encode(unsigned char *out, int masked, const unsigned char *payload, size_t n,
                     const unsigned char key[4])
{
    size_t h = 0;
    out[h++] = 0x81; /* FIN, text */
    unsigned char m = masked ? 0x80 : 0;
    if (n < 126) {
        out[h++] = m | (unsigned char)n;
    } else if (n < 65536) {
        out[h++] = m | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--) {
            out[h++] = (unsigned char)((uint64_t)n >> (8 * i));
        }
    }
    if (masked) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++) {
        out[h + i] = masked ? (unsigned char)(payload[i] ^ key[i % 4]) : payload[i];
    }
    return h + n;
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
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
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
    while (c->wpos < frame_len) {
        ssize_t w = write(c->fd, frame + c->wpos, frame_len - c->wpos);
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

/* Watch for writability only while a frame is partly written. */
static void want_write(conn *c, int epfd)
{
    int want = c->wpos < frame_len && c->sent_at > 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Consume whole frames from rbuf.  Returns -1 when the connection must go. */
static int parse(conn *c, int sending, double t)
{
    for (;;) {
        if (c->rlen < 2) {
            return 0;
        }
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
            if (h + len != expect_len || memcmp(c->rbuf, expect, expect_len) != 0 ||
                c->sent_at == 0) {
                R.non_2xx++;
                return -1;
            }
            R.messages++;
            R.bytes += h + len;
            record(t - c->sent_at);
            c->sent_at = 0;
            if (sending) {
                c->wpos = 0;
                c->sent_at = t;
                if (pump_write(c) < 0) {
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
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS DURATION_S TIMEOUT_S "
                        "MESSAGE_BYTES\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), nconn = atoi(argv[4]);
    double duration = atof(argv[5]), timeout = atof(argv[6]);
    long msg = atol(argv[7]);
    if (port <= 0 || nconn <= 0 || duration <= 0 || timeout <= 0 || msg < 0 ||
        msg > RBUF - 16) {
        fprintf(stderr, "wsload: bad arguments\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "wsload: HOST must be an IPv4 address\n");
        return 2;
    }
    unsigned char *payload = malloc((size_t)msg + 1);
    frame = malloc((size_t)msg + 14);
    expect = malloc((size_t)msg + 10);
    conn *conns = calloc((size_t)nconn, sizeof(conn));
    if (payload == NULL || frame == NULL || expect == NULL || conns == NULL) {
        perror("malloc");
        return 2;
    }
    for (long i = 0; i < msg; i++) {
        payload[i] = (unsigned char)('a' + i % 26);
    }
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    frame_len = encode(frame, 1, payload, (size_t)msg, key);
    expect_len = encode(expect, 0, payload, (size_t)msg, key);

    int epfd = epoll_create1(0);
    int alive = 0;
    for (int i = 0; i < nconn; i++) {
        if (open_conn(&conns[i], &addr, host, port, path, timeout) == 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
            epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
            alive++;
        }
    }
    double start = now(), stop = start + duration;
    for (int i = 0; i < nconn; i++) {
        conn *c = &conns[i];
        if (c->alive) {
            c->sent_at = start;
            c->wpos = 0;
            if (pump_write(c) < 0) {
                drop(c, epfd);
                alive--;
            } else if (c->wpos < frame_len) {
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
                } else if (c->wpos < frame_len) {
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
    free(payload);
    free(frame);
    free(expect);
    free(conns);
    free(R.lat);
    close(epfd);
    return 0;
}
