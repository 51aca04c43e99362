"""A minimal FastCGI client (responder role), to talk to the pool's socket without
nginx: the tests use it to send what nginx never would (no HTTPS param, broken
params, a body shorter than its Content-Length)."""
import socket
import struct

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7


def _record(kind, content, request_id=1):
    out = b""
    # Records carry at most 65535 bytes: split long content.
    chunks = [content[i:i + 65535] for i in range(0, len(content), 65535)] or [b""]
    for chunk in chunks:
        out += struct.pack(">BBHHBB", 1, kind, request_id, len(chunk), 0, 0) + chunk
    return out


def _length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = b""
    for name, value in params:
        name = name if isinstance(name, bytes) else name.encode()
        value = value if isinstance(value, bytes) else value.encode()
        out += _length(len(name)) + _length(len(value)) + name + value
    return out


def request(socket_path, params, body=b"", close_stdin=True, timeout=10):
    """Sends one request; returns (status, headers dict lower-cased, body bytes)."""
    s = open_request(socket_path, params, timeout)
    try:
        data = b""
        if body:
            data += _record(STDIN, body)
        if close_stdin:
            data += _record(STDIN, b"")
        s.sendall(data)
        if not close_stdin:
            # Half-close: the responder sees end of stream before Content-Length is met.
            s.shutdown(socket.SHUT_WR)
        return read_response(s)
    finally:
        s.close()


def head(params, keep_conn=False):
    """The begin-request record (FCGI_KEEP_CONN when `keep_conn`) and the params records."""
    data = _record(BEGIN_REQUEST, struct.pack(">HB5x", 1, 1 if keep_conn else 0))
    encoded = encode_params(params)
    if encoded:
        data += _record(PARAMS, encoded)
    return data + _record(PARAMS, b"")


def connect(socket_path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(socket_path)
    return s


def open_request(socket_path, params, timeout=10, keep_conn=False):
    """Connects and sends the begin-request record and the params; the body is the caller's."""
    s = connect(socket_path, timeout)
    s.sendall(head(params, keep_conn))
    return s


def send_stdin(s, data, last=False):
    """Sends part of the body; `last` ends it."""
    s.sendall((_record(STDIN, data) if data else b"") + (_record(STDIN, b"") if last else b""))


def read_response(s):
    """Reads records until END_REQUEST (or the end of the stream): (status, headers, body)."""
    stdout = b""
    buffer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 8:
            _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", buffer[:8])
            if len(buffer) < 8 + length + padding:
                break
            content = buffer[8:8 + length]
            buffer = buffer[8 + length + padding:]
            if kind == STDOUT:
                stdout += content
            elif kind == END_REQUEST:
                return _parse(stdout)
    return _parse(stdout)


def _parse(stdout):
    head, _, body = stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n"):
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode()
    status = int(headers.get("status", "200").split()[0]) if headers else 0
    return status, headers, body


def base_params(method="GET", uri="/healthz", https=True, **extra):
    params = [("REQUEST_METHOD", method), ("REQUEST_URI", uri), ("REMOTE_ADDR", "127.0.0.1"),
              ("REQUEST_ID", "0123456789abcdef0123456789abcdef")]
    if https:
        params.append(("HTTPS", "on"))
    params.extend(extra.items())
    return params
