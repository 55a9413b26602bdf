"""Whole, small WebSocket messages decoded without wsproto (RFC 6455 5.2).

wsproto decodes every frame through a generator, a buffer object and an
incremental UTF-8 decoder: about 7.7 us for a 16-byte frame, most of the
cost of a WebSocket echo.  Most client messages are one small frame: FIN
set, no RSV bits, text or binary, masked, under 126 bytes.  While wsproto
holds nothing (no bytes, no partial frame, no fragmented message), those
frames are decoded here; at the first byte that is anything else the rest
goes to wsproto, which then meets exactly the stream it would have met.
Only used without extensions (permessage-deflate sets RSV1).
"""

from __future__ import annotations

TEXT_FIN = 0x81
BINARY_FIN = 0x82
MASKED = 0x80
SMALL = 126  # payload lengths below this fit the 7-bit length field


def split_simple_frames(data: bytes | bytearray | memoryview
                        ) -> tuple[list[tuple[bool, bytes | str]], int]:
    """Decode the leading whole, small, masked text/binary frames of `data`.

    Returns ([(is_text, payload), ...], bytes consumed).  Stops before the
    first frame that is incomplete, fragmented, a control frame, unmasked,
    carries RSV bits, is 126 bytes or longer, or is text that is not valid
    UTF-8: wsproto decides about that one (and answers errors with the
    right close code)."""
    out: list[tuple[bool, bytes | str]] = []
    pos = 0
    end = len(data)
    while end - pos >= 6:
        first = data[pos]
        second = data[pos + 1]
        if (first != TEXT_FIN and first != BINARY_FIN) or not second & MASKED:
            break
        n = second & 0x7F
        if n >= SMALL or end - pos < 6 + n:
            break
        mask = bytes(data[pos + 2:pos + 6])
        masked = bytes(data[pos + 6:pos + 6 + n])
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(masked, "little") ^ int.from_bytes(key, "little")).to_bytes(
            n, "little")
        if first == TEXT_FIN:
            try:
                out.append((True, payload.decode("utf-8")))
            except UnicodeDecodeError:
                break
        else:
            out.append((False, payload))
        pos += 6 + n
    return out, pos
