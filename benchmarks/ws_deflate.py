"""What permessage-deflate costs the C codec per message, with many connections.

    python benchmarks/ws_deflate.py [--connections 100] [--messages 3000]

In-process, no sockets: --connections WsCodec objects (each with its own
zlib streams, as a server holds them) take turns, each encoding the next
message of the WebSocket benchmark workloads (harness/workloads.py: 16-byte
text, 16 KiB JSON text) and decoding a masked, compressed client frame of it.
Prints microseconds per message for each direction and the compressed size
as a share of the original.  Turn-taking matters: with one connection zlib's
state stays in the CPU caches and deflate looks several times cheaper than a
server holding many connections finds it (docs/websocket.md, "Compression
cost").  Run it on two builds to compare them.  --sweep first times
Python's zlib with the settings the deflater could have.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib

from harness.workloads import WORKLOADS, websocket_messages

from carpinus._core import WS_TEXT, WsCodec, ws_negotiate_deflate

OFFER = b"permessage-deflate; client_max_window_bits"  # what browsers send


def client_frame(message: bytes) -> bytes:
    """A masked text frame of `message` compressed on its own (RSV1 set)."""
    compressor = zlib.compressobj(wbits=-15)
    body = (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    mask = os.urandom(4)
    n = len(body)
    if n < 126:
        head = bytes([0xC1, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0xC1, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0xC1, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def measure(workload: str, connections: int, count: int) -> tuple[float, float, float]:
    """(µs to encode, µs to decode, compressed share) per message."""
    messages = websocket_messages(WORKLOADS[workload])
    texts = [m.decode() for m in messages]
    frames = [client_frame(m) for m in messages]
    agreed = ws_negotiate_deflate(OFFER)
    assert agreed is not None
    codecs = [WsCodec(64 * 1024 * 1024, agreed[1]) for _ in range(connections)]
    for codec in codecs:  # every zlib stream made before the clock starts
        codec.encode(WS_TEXT, texts[0])
        codec.feed(frames[0])
    encoded = 0
    start = time.perf_counter()
    for i in range(count):
        encoded += len(codecs[i % connections].encode(WS_TEXT, texts[i // connections
                                                                     % len(texts)]))
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(count):
        codecs[i % connections].feed(frames[i // connections % len(frames)])
    decode_s = time.perf_counter() - start
    share = encoded / (count * len(messages[0]))
    return encode_s * 1e6 / count, decode_s * 1e6 / count, share


def sweep(connections: int, count: int) -> None:
    """Python's zlib (the same library) deflating 16 KiB JSON messages with
    each level, window and memLevel the deflater could use: how the choices
    in wsframe.c (DEFLATE_WINDOW_BITS, DEFLATE_MEM_LEVEL, DEFLATE_LARGE_LEVEL)
    were made."""
    messages = websocket_messages(WORKLOADS["websocket16k-deflate"])
    for level in (6, 1):
        for window in (15, 12):
            for mem_level in (8, 5):
                streams = [zlib.compressobj(level, zlib.DEFLATED, -window, mem_level)
                           for _ in range(connections)]
                for stream in streams:
                    stream.compress(messages[0])
                    stream.flush(zlib.Z_SYNC_FLUSH)
                out = 0
                start = time.perf_counter()
                for i in range(count):
                    stream = streams[i % connections]
                    out += len(stream.compress(messages[i // connections % len(messages)])
                               + stream.flush(zlib.Z_SYNC_FLUSH))
                took = (time.perf_counter() - start) * 1e6 / count
                print(f"zlib level {level}, window {window} bits, memLevel {mem_level}: "
                      f"{took:6.1f} µs, {out / count / len(messages[0]):6.1%} of 16 KiB",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sweep", action="store_true",
                        help="also time Python's zlib with each level, window and memLevel")
    args = parser.parse_args()
    if args.sweep:
        sweep(args.connections, args.messages)
    for workload in ("websocket-deflate", "websocket16k-deflate"):
        encode, decode, share = measure(workload, args.connections, args.messages)
        print(f"{workload:22} {args.connections} connections: encode {encode:7.1f} µs, "
              f"decode {decode:6.1f} µs, on the wire {share:6.1%} (frame header included)",
              flush=True)


if __name__ == "__main__":
    main()
