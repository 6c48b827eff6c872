"""The wire's HTTP/1.x answer reader (drivers/wire.py Answer), on raw bytes: framing, heads, refusals.

Over real sockets it is exercised by every driver test; these pin down the corners a device may show."""

from __future__ import annotations

import io

import pytest

from canteen_ops.drivers.wire import MAX_HEADERS, Answer, _BadAnswer, _NoAnswer


def answer(raw: bytes, method: str = "GET") -> tuple[Answer, bytes]:
    a = Answer(io.BufferedReader(io.BytesIO(raw)), method)
    body = b""
    while chunk := a.read1(7):  # small reads cross chunk and buffer boundaries
        body += chunk
    return a, body


def test_content_length_body_and_headers_in_any_case():
    a, body = answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 11\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
                     b"hello world")
    assert (a.status, a.reason, body, a.will_close) == (200, "OK", b"hello world", False)
    assert a.headers.get("CONTENT-TYPE") == a.headers.get("content-type") == "text/xml"
    assert a.headers.get("x-a") == "1, 2"  # repeated headers joined, as http.client does
    assert a.raw_headers == [("Content-Type", "text/xml"), ("Content-Length", "11"), ("X-A", "1"), ("x-a", "2")]


def test_chunked_body_with_extensions_and_trailers():
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    a, body = answer(raw)
    assert body == b"hello world" and not a.will_close


def test_body_until_close_without_length():
    a, body = answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
    assert body == b"all of it" and a.will_close


@pytest.mark.parametrize("raw,method", [
    (b"HTTP/1.1 204 No Content\r\n\r\n", "GET"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "HEAD"),
])
def test_answers_without_a_body(raw, method):
    a, body = answer(raw, method)
    assert body == b"" and not a.will_close


def test_interim_100_continue_is_skipped():
    a, body = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    assert (a.status, body) == (401, b"")


def test_connection_close_and_http_1_0():
    assert answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")[0].will_close
    assert answer(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")[0].will_close
    assert not answer(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")[0].will_close


def test_folded_header_continues_the_previous_one():
    a, _ = answer(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="r",\r\n nonce="n"\r\n'
                  b"Content-Length: 0\r\n\r\n")
    assert a.headers.get("www-authenticate") == 'Digest realm="r", nonce="n"'


def test_no_status_line_is_a_closed_connection():
    with pytest.raises(_NoAnswer):
        answer(b"")


@pytest.mark.parametrize("raw,why", [
    (b"SSH-2.0-OpenSSH_8.9\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "chunk end"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-body"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (64 * 1024 + 10) + b"\r\n\r\n", "too long"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n", "header lines"),
    (b"HTTP/1.1 200 OK\r\nX: 1\r\n" + b" more\r\n" * (MAX_HEADERS + 1) + b"\r\n", "header lines"),
])
def test_answers_that_are_refused(raw, why):
    with pytest.raises(_BadAnswer, match=why):
        answer(raw)


def test_a_repeated_equal_content_length_is_accepted():
    assert answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")[1] == b"ok"
