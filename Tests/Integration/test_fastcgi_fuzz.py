"""Generated FastCGI input straight at the pool's socket: random params (names, values,
binary, invalid UTF-8, oversized), random methods and URIs, bodies shorter or longer than
their Content-Length. Every request must get a well-formed 4xx/2xx answer, and no worker
may crash."""
import random

import fcgi

ALPHABET = [b"/", b"%", b"%ff", b"%2F", b"?", b"&", b"=", b"..", b"\xff", b"\xc3\x28", b"\x00", b"a", b"Z", b"9", b" ", b"\r\n", "é".encode()]
NAMES = [b"REQUEST_METHOD", b"REQUEST_URI", b"DOCUMENT_URI", b"CONTENT_LENGTH", b"HTTPS", b"REMOTE_ADDR", b"REQUEST_ID",
         b"HTTP_X_API_KEY", b"HTTP_AUTHORIZATION", b"HTTP_CONTENT_TYPE", b"QUERY_STRING", b"\xff\xfe", b"", b"HTTP_"]
PATHS = [b"/healthz", b"/readyz", b"/api/v1/admin/api-keys", b"/api/v1/admin/symbols/BTC", b"/api/v1/auth/key",
         b"/api/v1/openapi.json", b"/status", b"/nope"]


def noise(rng, limit=40):
    return b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(limit)))


def random_request(rng):
    params = [("REQUEST_METHOD", rng.choice([b"GET", b"POST", b"PATCH", b"DELETE", b"get", b"", b"G\xffT", b"X" * 30])),
              ("REQUEST_URI", rng.choice(PATHS) + rng.choice([b"", b"?", b"?limit=" + noise(rng, 4), noise(rng)])),
              ("HTTPS", rng.choice([b"on", b"ON", b"off", b""])),
              ("REMOTE_ADDR", rng.choice([b"127.0.0.1", b"::1", b"", noise(rng, 10)]))]
    for _ in range(rng.randrange(6)):
        value = noise(rng, 60) if rng.random() < 0.9 else b"v" * rng.choice([20_000, 70_000])
        params.append((rng.choice(NAMES) + noise(rng, 3), value))
    body = noise(rng, 200) if rng.random() < 0.5 else b""
    declared = rng.choice([None, len(body), len(body) + rng.randrange(1, 50), max(0, len(body) - 1), rng.randrange(10**9)])
    if declared is not None:
        params.append(("CONTENT_LENGTH", str(declared)))
    return params, body


def test_generated_fastcgi_input_never_crashes_a_worker(stack, client):
    before = stack.status()
    rng = random.Random(20261121)
    statuses = []
    for _ in range(400):
        params, body = random_request(rng)
        status, headers, _ = fcgi.request(stack.socket, params, body=body)
        statuses.append(status)
        assert 200 <= status < 500, (params[:3], status)
        assert "x-request-id" in headers
    assert len(set(statuses)) >= 4  # the generator reaches many different answers
    after = stack.status()
    assert after["restarts"]["crash"] == before["restarts"]["crash"]
    assert after["restarts"]["timeout"] == before["restarts"]["timeout"]
    assert client.get(stack.base + "/healthz").status_code == 200
