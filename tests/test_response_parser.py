"""The shared response parser (tests/support/response_parser.py), fed whole,
a byte at a time and followed by the next response, as the server's own
parser is tested: RawClient, the fuzz harness and the soak script rely on it."""

from __future__ import annotations

import pytest

from tests.support.response_parser import MalformedResponse, parse_response

RESPONSES = {
    "content-length": (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", b"hello"),
    "chunked": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello"),
    "empty-chunked": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", b""),
    "no-content": (b"HTTP/1.1 204 No Content\r\nserver: x\r\n\r\n", b""),
    "continue": (b"HTTP/1.1 100 Continue\r\n\r\n", b""),
    "switching": (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", b""),
    "obs-text-and-tab": (b"HTTP/1.1 200 OK\r\nx-a: caf\xe9\tbar \r\ncontent-length: 0\r\n\r\n",
                         b""),
}
NEXT = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize("name", RESPONSES)
def test_whole_then_trailing_data(name: str) -> None:
    raw, body = RESPONSES[name]
    resp, end = parse_response(raw + NEXT)
    assert resp.complete and end == len(raw) and resp.body == body
    assert resp.head == raw[: raw.index(b"\r\n\r\n") + 4]
    following, end2 = parse_response(raw + NEXT, end)
    assert following.status == 404 and following.complete and end2 == len(raw + NEXT)


@pytest.mark.parametrize("name", RESPONSES)
def test_byte_by_byte(name: str) -> None:
    """Every proper prefix is incomplete (never an error); the whole is complete."""
    raw, body = RESPONSES[name]
    for n in range(len(raw)):
        resp, end = parse_response(raw[:n])
        assert not resp.complete and end == n, (n, raw[:n])
        assert body.startswith(resp.body)
    assert parse_response(raw)[0].body == body


def test_value_whitespace_and_header_lookup() -> None:
    resp, _ = parse_response(RESPONSES["obs-text-and-tab"][0])
    assert resp.headers[0] == (b"x-a", b"caf\xe9\tbar ")  # as sent; RawClient strips
    assert resp.header(b"content-length") == b"0" and resp.header(b"x-b") is None


def test_close_delimited_body_is_complete_only_at_eof() -> None:
    raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nsome"
    assert not parse_response(raw)[0].complete
    resp, end = parse_response(raw, at_eof=True)
    assert resp.complete and resp.body == b"some" and end == len(raw)


def test_head_request_has_no_body_whatever_the_framing_says() -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-app: 0\r\n\r\n" + NEXT
    assert parse_response(raw, head_request=True)[1] == len(raw) - len(NEXT)
    assert parse_response(raw, head_request=lambda r: r.header(b"x-app") == b"0")[0].body == b""


@pytest.mark.parametrize("raw", [
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-trailer: 1\r\n\r\n",
    b"X" * 64,
], ids=["http-1.0", "space-in-name", "control-in-value", "cl-and-te", "te-not-chunked",
        "negative-length", "chunk-extension", "uppercase-hex", "no-crlf-after-data",
        "trailers", "no-status-line"])
def test_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_response(raw, at_eof=True)
