/*
 * h2.h -- HTTP/2 on a connection (h2.c), over libnghttp2.
 *
 * nghttp2 does the protocol: frames, HPACK, stream states, flow control,
 * SETTINGS, and the checks RFC 9113 asks of a server (pseudo-headers,
 * field syntax, Content-Length against DATA).  h2.c maps streams onto the
 * same RequestCycle an HTTP/1.1 request gets: one scope builder, one
 * receive()/send(), one response validation (response.c) for both.
 *
 * A connection speaks HTTP/2 from its first byte: ALPN chose "h2" during
 * the TLS handshake, or a cleartext client opened with the HTTP/2
 * connection preface (h2c with prior knowledge).  HttpProtocol then enters
 * CP_ST_H2 and hands every byte it reads to cp_h2_feed(); nothing of the
 * HTTP/1.1 parser runs on it again.
 *
 * Without libnghttp2 at build time (CP_HAVE_NGHTTP2 undefined) the same
 * functions exist; cp_h2_available() says 0 and the server refuses --http 2
 * at start-up (protocols/http/core.py).
 */
#ifndef CARPINUS_H2_H
#define CARPINUS_H2_H

/* Included at the end of core.h: the types below are core.h's. */

/* 1 when the extension was built with libnghttp2. */
int cp_h2_available(void);
/* The preface a cleartext HTTP/2 client opens with. */
#define CP_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define CP_H2_PREFACE_LEN 24

/* Start HTTP/2 on the connection (state CP_ST_H2): the server's SETTINGS
   go out at once.  0, or -1 with an exception. */
int cp_h2_begin(HttpProtocol *c);
/* Feed the bytes at [rpos, rlen) (all of them are consumed) and write what
   they make nghttp2 answer.  0; -1 when the connection failed (closed);
   -2 with an exception that must propagate (SystemExit from an app started
   eagerly). */
int cp_h2_feed(HttpProtocol *c);
/* Write out what nghttp2 has queued (not from inside one of its
   callbacks: then it happens when the callback returns). */
void cp_h2_flush(HttpProtocol *c);
/* The loop's callback for a flush request_flush() scheduled. */
void cp_h2_scheduled_flush(HttpProtocol *c);
/* The connection is closing or lost: every stream's app hears
   http.disconnect; the session is freed. */
void cp_h2_close(HttpProtocol *c);
/* Graceful shutdown: GOAWAY with the last stream id; in-flight streams go
   on, the connection closes once they are done. */
void cp_h2_shutdown(HttpProtocol *c);
/* The idle timeout: GOAWAY, then close. */
void cp_h2_idle_timeout(HttpProtocol *c);
/* The transport resumed writing: wake the streams' waiting send()s. */
void cp_h2_resume_writing(HttpProtocol *c);
/* Open streams (requests still being served). */
size_t cp_h2_open_streams(const HttpProtocol *c);
/* For the GC: the cycles the streams hold. */
int cp_h2_traverse(HttpProtocol *c, visitproc visit, void *arg);

/* ---- the request cycle's side (cycle.c) ------------------------------ */

/* The app took n body bytes: the peer may send that many more
   (WINDOW_UPDATE), so flow control is the app's pace, not ours. */
void cp_h2_body_consumed(RequestCycle *cy, size_t n);
/* Put a body message on the stream: the response's HEADERS with the
   first, then DATA as the peer's window allows.  0, or -1 with an
   exception. */
int cp_h2_write(RequestCycle *cy, cp_body_parts *parts);
/* The trailer fields in cy->head ("name: value" lines) end the stream:
   HEADERS with END_STREAM once the queued DATA is out.  0, or -1 with an
   exception. */
int cp_h2_trailers(RequestCycle *cy);
/* A 103 (its HTTP/1.1 form, from cp_response_early_hint) as an interim
   HEADERS frame on the stream.  0, or -1 with an exception. */
int cp_h2_early_hint(RequestCycle *cy, const char *head, size_t len);
/* Whether send() must wait: the transport paused writing or the stream's
   unsent data is above the high-water mark (the peer's window is short). */
int cp_h2_must_wait(RequestCycle *cy);
/* The app ended without completing its response (the cycle already let
   go of c): 500 if nothing was sent, else the stream is reset. */
void cp_h2_app_failed(HttpProtocol *c, RequestCycle *cy);

#endif /* CARPINUS_H2_H */
