"""HTTP/1.1 messages as the router relays them, and kept-alive upstream connections.

The router parses only what it must (the start line, header names, the body's
framing) and passes the rest on as bytes: http.server and http.client build a
message object of every header through the email package, which would cost the
router more than the model server spends on a small inference. Headers that
concern one connection only (RFC 9110 section 7.6.1: Connection and what it
names, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade, Proxy-*) are dropped
at each hop; bodies are always sent on with a Content-Length.

Upstream connections are pooled per backend and reused: a new TCP connection per
request would cost more than the rest of the relay. A pooled connection the
backend closed while it sat idle is noticed before use (it reads as ready with
nothing sent) and replaced, since a request, once sent, is never sent again.

Example::

    pool = Pool("http://127.0.0.1:8001", timeout=30)
    reply = pool.exchange(b"GET /v2/health/ready HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", "GET")
    reply.status        # 200
"""

from __future__ import annotations

import functools
import re
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass

HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"expect",
    }
)  # fmt: skip
MAX_LINE = 65536
MAX_HEAD = 65536
MAX_FIELDS = 100
RECEIVE_SIZE = 65536
#: A pooled connection idle for longer is closed rather than reused: the model server
#: closes connections idle for its --read-timeout (30 s by default).
MAX_IDLE_SECONDS = 15.0
#: A connection used this recently is reused without checking that the backend kept it
#: open: a server closes idle connections after seconds (its read timeout) or when it
#: drains, and the router drains a version only after taking its traffic away.
FRESH_SECONDS = 1.0

_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Field lines as RFC 9112 has them: a token, a colon, a value; no obsolete line folding.
_FIELD_LINES = re.compile(rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*\r\n)*")
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*")
# The fields that decide framing and what is passed on, found in one scan.
_NOTED = re.compile(
    rb"^(content-length|transfer-encoding|connection|host|keep-alive|proxy-connection|"
    rb"proxy-authenticate|proxy-authorization|te|trailer|upgrade|expect):[ \t]*(.*?)[ \t]*\r$",
    re.MULTILINE,
)


class HttpError(Exception):
    """A message the router cannot relay; ``status`` is what the client is told."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UpstreamError(Exception):
    """A backend that refused, failed or stalled; ``status`` is 502 or 504."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Head:
    """A start line and header fields as received; what framing needs is read once.

    The fields stay one block of bytes (each line ending in CRLF): a message without
    hop-by-hop fields is passed on as it came, with no work per field.
    """

    __slots__ = ("start", "fields", "lowered", "noted")

    def __init__(self, start: bytes, fields: bytes) -> None:
        self.start = start  # request line or status line, without its line end
        self.fields = fields
        self.lowered = fields.lower()
        self.noted: dict[bytes, list[bytes]] = {}
        for found in _NOTED.finditer(self.lowered):
            self.noted.setdefault(found[1], []).append(found[2])

    @property
    def lengths(self) -> list[bytes]:
        return self.noted.get(b"content-length", [])

    @property
    def codings(self) -> list[bytes]:
        return self.noted.get(b"transfer-encoding", [])

    @property
    def tokens(self) -> set[bytes]:
        """The Connection field's options (lower case)."""
        return {t.strip() for v in self.noted.get(b"connection", []) for t in v.split(b",")}

    def get(self, name: bytes) -> bytes | None:
        """The value of the last field called ``name`` (lower case), as sent, stripped."""
        found = None
        for found in _field_pattern(name).finditer(self.lowered):  # noqa: B007 - the last wins
            pass
        return None if found is None else self.fields[found.start(1) : found.end(1)]

    def end_to_end(self, drop: frozenset[bytes] = frozenset()) -> bytes:
        """The fields to pass on: all but the hop-by-hop ones, those Connection names
        and ``drop``."""
        if not drop and HOP_BY_HOP.isdisjoint(self.noted):
            return self.fields
        named = drop | HOP_BY_HOP | self.tokens
        return b"".join(
            line + b"\r\n"
            for line in self.fields.split(b"\r\n")[:-1]
            if line.split(b":", 1)[0].lower() not in named
        )

    def wants_close(self, version: bytes) -> bool:
        """Whether the sender closes the connection after this message."""
        if version == b"HTTP/1.0":
            return b"keep-alive" not in self.tokens
        return b"close" in self.tokens


@functools.lru_cache(maxsize=64)
def _field_pattern(name: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"^" + re.escape(name) + rb":[ \t]*(.*?)[ \t]*\r$", re.MULTILINE)


def configure(sock: socket.socket, seconds: float) -> None:
    """A blocking socket whose reads and writes the kernel times out (SO_RCVTIMEO and
    SO_SNDTIMEO) after ``seconds``, without Nagle's delay.

    A Python-level timeout would poll before every read and write: twice the system
    calls on the relay's path. A read that times out raises BlockingIOError instead.
    """
    sock.settimeout(None)
    whole = int(seconds)
    limit = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Reader:
    """Buffered reads from a socket set up by :func:`configure`.

    A head is found whole in the buffer (one search for its blank line, one split)
    rather than read line by line.
    """

    __slots__ = ("sock", "buffer")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bytes:
        try:
            return self.sock.recv(RECEIVE_SIZE)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("timed out") from None

    def head(self) -> Head | None:
        """The next message head; None when the peer closed before sending one."""
        while True:
            buffer = self.buffer
            if buffer[:1] in (b"\r", b"\n"):
                # One empty line before a request is allowed (RFC 9112 section 2.2).
                buffer = self.buffer = buffer.lstrip(b"\r\n")
            end = buffer.find(b"\r\n\r\n")
            # The usual CRLF head in one memory search; bare LF ends (allowed) by the regex.
            if end >= 0 and buffer.find(b"\n\n", 0, end) < 0 and buffer.find(b"\n\r\n", 0, end) < 0:
                cut = end + 4
                break
            found = _HEAD_END.search(buffer) if b"\n\n" in buffer or b"\n\r\n" in buffer else None
            if found is not None:
                end, cut = found.start(), found.end()
                break
            if len(buffer) > MAX_HEAD:
                raise HttpError(431, f"the head is over {MAX_HEAD} bytes")
            data = self._more()
            if not data:
                if buffer:
                    raise ConnectionResetError("the peer closed the connection mid-head")
                return None
            self.buffer += data
        text, self.buffer = buffer[:end], buffer[cut:]
        if len(text) > MAX_HEAD:
            raise HttpError(431, f"the head is over {MAX_HEAD} bytes")
        start, _, rest = text.partition(b"\n")
        fields = rest + b"\r\n" if rest else b""
        lines = fields.count(b"\n")
        if lines != fields.count(b"\r\n"):  # bare LF line ends: accepted, passed on as CRLF
            fields = fields.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if lines > MAX_FIELDS:
            raise HttpError(431, f"more than {MAX_FIELDS} header fields")
        if not _FIELD_LINES.fullmatch(fields):
            bad = next(f for f in fields.split(b"\r\n") if not _FIELD_LINE.fullmatch(f))
            raise HttpError(400, f"a malformed header field: {bad[:60]!r}")
        return Head(start.rstrip(b"\r"), fields)

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes; ConnectionResetError when the peer closes first."""
        if len(self.buffer) >= size:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
            return data
        parts = [self.buffer]
        have = len(self.buffer)
        while have < size:
            data = self._more()
            if not data:
                raise ConnectionResetError(f"the peer closed the connection after {have} bytes")
            parts.append(data)
            have += len(data)
        whole = b"".join(parts)
        self.buffer = whole[size:]
        return whole[:size]

    def readline(self, limit: int) -> bytes:
        """A line with its end, or what came before ``limit`` bytes or the peer closing."""
        while True:
            end = self.buffer.find(b"\n", 0, limit)
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            if len(self.buffer) >= limit:
                return self.buffer[:limit]
            data = self._more()
            if not data:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += data

    def rest(self) -> bytes:
        """Everything until the peer closes (a body without framing)."""
        parts = [self.buffer]
        while data := self._more():
            parts.append(data)
        self.buffer = b""
        return b"".join(parts)


def body_length(head: Head) -> int | None:
    """The Content-Length of a message, None when it is chunked; raises HttpError."""
    codings, lengths = head.codings, head.lengths
    if codings:
        if lengths:
            raise HttpError(400, "both Transfer-Encoding and Content-Length are set")
        if [c.strip().lower() for c in b",".join(codings).split(b",")] != [b"chunked"]:
            raise HttpError(501, f"unsupported Transfer-Encoding {b', '.join(codings)!r}")
        return None
    if not lengths:
        return 0
    if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 19:
        raise HttpError(400, f"invalid Content-Length {b', '.join(lengths)!r}")
    return int(lengths[0])


def read_body(reader: Reader, length: int | None, limit: int) -> bytes:
    """A body of ``length`` bytes, or chunked when None, of at most ``limit`` bytes."""
    if length is not None:
        if length > limit:
            raise HttpError(413, f"the body is {length} bytes, over the limit of {limit}")
        return reader.read(length) if length else b""
    parts: list[bytes] = []
    size = 0
    while True:
        line = reader.readline(1024)
        if not line.endswith(b"\n"):
            raise HttpError(400, "a chunk size line is too long or cut")
        text = line.split(b";", 1)[0].strip()
        try:
            chunk = int(text, 16) if text and len(text) <= 16 else -1
        except ValueError:
            chunk = -1
        if chunk < 0:
            raise HttpError(400, f"invalid chunk size {text[:20]!r}")
        if chunk == 0:
            break
        size += chunk
        if size > limit:
            raise HttpError(413, f"the body is over the limit of {limit} bytes")
        parts.append(reader.read(chunk))
        if reader.readline(3) not in (b"\r\n", b"\n"):
            raise HttpError(400, "a chunk is longer than its size")
    for _ in range(MAX_FIELDS):  # trailer fields, dropped
        if reader.readline(MAX_LINE + 1) in (b"\r\n", b"\n", b""):
            return b"".join(parts)
    raise HttpError(400, "too many trailer fields")


@dataclass
class Reply:
    """A backend's answer, read whole."""

    status: int
    head: Head  # its start is the status line as sent to a client: HTTP/1.1 and the rest
    body: bytes
    seconds: float  # from sending the request to the last byte of the answer

    def framed(self, method: str) -> bool:
        """Whether the answer carries its own Content-Length (else the router adds one)."""
        return bool(self.head.lengths) or method == "HEAD" or self.status in (204, 304)


class Connection:
    """One kept-alive connection to a backend."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        configure(self.sock, timeout)
        self.reader = Reader(self.sock)
        self.idle_since = time.monotonic()

    def stale(self, now: float) -> bool:
        """Closed by the backend while idle: something (an end) to read though nothing was asked."""
        idle = now - self.idle_since
        if self.reader.buffer or idle > MAX_IDLE_SECONDS:
            return True
        if idle < FRESH_SECONDS:
            return False  # a system call saved on the relay's path (see FRESH_SECONDS)
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False  # nothing to read: open and idle
        except OSError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()

    def exchange(self, request: bytes, method: str) -> tuple[Reply, bool]:
        """Send one request, read its answer; returns it and whether the connection is reusable."""
        started = time.perf_counter()
        self.sock.sendall(request)
        while True:
            head = self.reader.head()
            if head is None:
                raise ConnectionResetError("the backend closed the connection without answering")
            version, _, rest = head.start.partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise HttpError(502, f"not an HTTP/1 status line: {head.start[:60]!r}")
            status = int(code)
            if status >= 200 or status == 101:
                break  # 1xx interim answers are dropped: the router sent no Expect
        reusable = not head.wants_close(version)
        head.start = b"HTTP/1.1 " + rest
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif head.lengths or head.codings:
            body = read_body(self.reader, body_length(head), 1 << 40)
        else:  # no framing: the body ends when the backend closes
            body, reusable = self.reader.rest(), False
        return Reply(status, head, body, time.perf_counter() - started), reusable


class Pool:
    """Idle kept-alive connections to one backend, taken and given back by request."""

    def __init__(self, url: str, timeout: float, keep: int = 64) -> None:
        authority = url.removeprefix("http://").rstrip("/")
        host, _, port = authority.rpartition(":")
        self.url = url
        self.host = host.strip("[]")
        self.port = int(port)
        self.authority = authority.encode()
        self.timeout = timeout
        self.keep = keep
        self._idle: deque[Connection] = deque()  # append and pop are atomic: no lock

    def _take(self) -> Connection:
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                break
            if not connection.stale(time.monotonic()):
                return connection
            connection.close()
        try:
            return Connection(self.host, self.port, self.timeout)
        except ConnectionRefusedError:
            raise UpstreamError(502, "connection refused") from None
        except TimeoutError:
            raise UpstreamError(504, f"no connection within {self.timeout:g} s") from None
        except OSError as exc:
            raise UpstreamError(502, f"cannot connect: {exc.strerror or exc}") from None

    def exchange(self, request: bytes, method: str) -> Reply:
        """One request on a pooled connection; raises UpstreamError, never retries."""
        connection = self._take()
        try:
            reply, reusable = connection.exchange(request, method)
        except (TimeoutError, BlockingIOError):
            connection.close()
            raise UpstreamError(504, f"no answer within {self.timeout:g} s") from None
        except HttpError as exc:
            connection.close()
            raise UpstreamError(502, f"a malformed answer: {exc}") from None
        except OSError as exc:
            connection.close()
            raise UpstreamError(502, f"the connection failed: {exc.strerror or exc}") from None
        if reusable and len(self._idle) < self.keep:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def request_bytes(
    method: str, target: bytes, fields: bytes, host: bytes, body: bytes, length: bool
) -> bytes:
    """A request to a backend: the fields to pass on, a Host when given, and the body's
    length when ``length`` (the client's own Content-Length is among ``fields``)."""
    parts = [method.encode(), b" ", target, b" HTTP/1.1\r\n"]
    if host:
        parts += (b"Host: ", host, b"\r\n")
    parts.append(fields)
    if length:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += (b"\r\n", body)
    return b"".join(parts)
