"""The small-frame fast path decodes exactly what wsproto decodes, and hands
wsproto the rest of the stream so that it sees what it would have seen."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from carpinus.protocols.websocket.frames import split_simple_frames


def wsproto_events(chunks: list[bytes]) -> list[tuple[object, ...]]:
    """What wsproto alone makes of the stream: data frames, control frames, or the error."""
    proto = FrameProtocol(client=False, extensions=[])
    events: list[tuple[object, ...]] = []
    try:
        for chunk in chunks:
            proto.receive_bytes(chunk)
            for frame in proto.received_frames():
                events.append((frame.opcode, frame.payload, frame.message_finished))
    except ParseFailed as exc:
        events.append(("error", int(exc.code)))
    return events


def fast_then_wsproto_events(data: bytes) -> list[tuple[object, ...]]:
    messages, used = split_simple_frames(data)
    events: list[tuple[object, ...]] = [
        (Opcode.TEXT if is_text else Opcode.BINARY, payload, True)
        for is_text, payload in messages]
    return events + wsproto_events([data[used:]]) if used < len(data) else events


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True,
                 rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = bytes((first, (0x80 if masked else 0) | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, (0x80 if masked else 0) | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


frames = st.one_of(
    # the common case, and its neighbours
    st.builds(client_frame, st.sampled_from([1, 2]), st.binary(max_size=140)),
    st.builds(client_frame, st.just(1),
              st.text(max_size=60).map(lambda t: t.encode("utf-8"))),
    st.builds(client_frame, st.sampled_from([0, 1, 2, 8, 9, 10, 3]), st.binary(max_size=130),
              fin=st.booleans(), masked=st.booleans(), rsv=st.integers(0, 7)),
    st.binary(max_size=12),  # garbage
)


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=8))
def test_fast_path_decodes_as_wsproto_does(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert fast_then_wsproto_events(data) == wsproto_events([data])


def test_common_frames_take_the_fast_path() -> None:
    data = client_frame(1, "héllo".encode()) + client_frame(2, b"\x00\xff" * 20)
    assert split_simple_frames(data) == ([(True, "héllo"), (False, b"\x00\xff" * 20)], len(data))


def test_stops_at_what_it_does_not_handle() -> None:
    whole = client_frame(1, b"ok")
    for other in (client_frame(1, b"x", fin=False), client_frame(9, b""),
                  client_frame(2, b"x" * 126), client_frame(1, b"\xff"),
                  client_frame(1, b"a", masked=False), client_frame(1, b"a", rsv=4),
                  client_frame(1, b"abc")[:-1]):
        assert split_simple_frames(whole + other) == ([(True, "ok")], len(whole))


def test_wsproto_idle_sees_partial_frames_and_fragmented_messages() -> None:
    """The fast path runs only while wsproto holds nothing; if wsproto's internals
    change, wsproto_idle says False and wsproto decodes everything."""
    from carpinus.protocols.websocket.protocol import wsproto_idle

    proto = FrameProtocol(client=False, extensions=[])
    assert wsproto_idle(proto)
    frame = client_frame(1, b"abc")
    proto.receive_bytes(frame[:3])
    assert list(proto.received_frames()) == [] and not wsproto_idle(proto)
    proto.receive_bytes(frame[3:])
    assert len(list(proto.received_frames())) == 1 and wsproto_idle(proto)
    proto.receive_bytes(client_frame(1, b"part", fin=False))
    assert len(list(proto.received_frames())) == 1 and not wsproto_idle(proto)
    proto.receive_bytes(client_frame(0, b" two"))
    assert len(list(proto.received_frames())) == 1 and wsproto_idle(proto)
