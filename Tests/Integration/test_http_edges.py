"""The HTTP surface of the pool through real nginx over HTTPS, and the FastCGI edge."""
import os
import socket
import struct
import time

import pytest

import fcgi


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"].startswith("https://")
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert len(body["request_id"]) == 32
    return body


def test_healthz_over_https_has_hsts_and_request_id(stack, client):
    r = client.get(stack.base + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    assert len(r.headers["X-Request-Id"]) == 32
    assert r.headers["Cache-Control"] == "no-store"


def test_request_ids_differ_per_request(stack, client):
    ids = {client.get(stack.base + "/healthz").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


def test_plain_http_api_is_refused_not_redirected(stack):
    import requests
    r = requests.get(stack.http_base + "/api/v1/admin/symbols", allow_redirects=False)
    assert_problem(r, 403)


def test_plain_http_elsewhere_redirects_to_https(stack):
    import requests
    r = requests.get(stack.http_base + "/healthz", allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"].startswith("https://")


def test_plain_http_with_a_key_is_refused_not_redirected_anywhere(stack):
    # A protected location (auth_request) outside /api/: the key was sent in the clear, and
    # a redirect would let the client retry over HTTPS without ever learning it.
    import requests
    for headers in ({"X-API-Key": "mdw_live_anything"}, {"Authorization": "Bearer mdw_live_anything"}):
        r = requests.get(stack.http_base + "/market-data/eu/quotes", headers=headers, allow_redirects=False)
        assert_problem(r, 403)
    assert requests.get(stack.http_base + "/market-data/eu/quotes", allow_redirects=False).status_code == 301


def test_unknown_route_404(stack, client):
    assert_problem(client.get(stack.base + "/api/v1/nope"), 404)


def test_wrong_method_405_with_allow(stack, client):
    r = client.post(stack.base + "/healthz", data=b"{}")
    assert_problem(r, 405)
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed == {"GET", "HEAD"}


def test_head_answers_like_get_without_body(stack, client):
    get = client.get(stack.base + "/healthz")
    r = client.head(stack.base + "/healthz")
    assert r.status_code == 200 and r.content == b""
    # The headers GET would send (the app, not nginx, answered the HEAD).
    assert r.headers["Content-Type"] == get.headers["Content-Type"]
    assert r.headers.get("Content-Length") == get.headers.get("Content-Length", str(len(get.content)))
    assert len(r.headers["X-Request-Id"]) >= 16 and r.headers["X-Request-Id"] != get.headers["X-Request-Id"]


def test_body_over_limit_413_from_app(stack, client):
    # Over the app's 1 MiB limit but under nginx's 2 MiB: the app answers.
    r = client.post(stack.base + "/healthz", data=b"x" * (1024 * 1024 + 1))
    assert_problem(r, 413)


def test_body_far_over_limit_413_from_nginx_is_problem_json(stack, client):
    r = client.post(stack.base + "/healthz", data=b"x" * (3 * 1024 * 1024))
    assert_problem(r, 413)
    # A location with headers of its own inherits none from the server: HSTS is repeated.
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")


def test_metrics_counts_requests_by_route_and_status(stack, client):
    def healthz_count():
        text = client.get(stack.base + "/metrics").text
        assert "# TYPE keygate_requests_total counter" in text
        lines = [l for l in text.splitlines() if l.startswith('keygate_requests_total{route="GET /healthz",status="200"}')]
        return (int(lines[0].split()[-1]) if lines else 0), text
    before, _ = healthz_count()
    client.get(stack.base + "/healthz")
    # (A worker counts a request just after answering it: another may serve /metrics first.)
    deadline = time.monotonic() + 2
    while (after := healthz_count())[0] < before + 1:
        assert time.monotonic() < deadline, "the request was never counted"
        time.sleep(0.02)
    assert after[0] == before + 1
    text = after[1]
    assert "keygate_worker_restarts_total" in text and "keygate_uptime_seconds" in text


def test_metrics_text_is_valid_prometheus_exposition(stack, client):
    import re
    client.get(stack.base + "/healthz")
    text = client.get(stack.base + "/metrics").text
    assert text.endswith("\n")
    typed, helped, names = {}, set(), set()
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (\S+)$')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in typed, f"{name} typed twice"
            assert kind in ("counter", "gauge")
            typed[name] = kind
        else:
            m = sample.match(line)
            assert m, f"not a sample line: {line!r}"
            assert m.group(1) in typed, f"{m.group(1)} has no TYPE before it"
            value = float(m.group(5))
            assert value >= 0 or typed[m.group(1)] == "gauge", line
            names.add(m.group(1))
    assert set(typed) == helped and names <= set(typed)
    assert {"keygate_requests_total", "keygate_uptime_seconds", "keygate_key_cache_lookups_total"} <= names


def test_status_route_lists_workers(stack, client):
    body = client.get(stack.base + "/status").json()
    assert body["master_pid"] > 0
    assert len(body["workers"]) == 4
    assert all(w["pid"] > 0 and w["state"] in ("idle", "busy") for w in body["workers"])
    assert any(w["state"] == "busy" for w in body["workers"])  # the one answering this request
    assert all(w["rss_bytes"] >= 0 for w in body["workers"])


def _get_from(stack, source, path):
    """GET `path` exactly as written (no client-side normalising) from a chosen local
    source address: 127.0.0.2 reaches nginx on 127.0.0.1 but is not an allowed operator."""
    import http.client
    import ssl
    import urllib.parse
    url = urllib.parse.urlsplit(stack.base)
    connection = http.client.HTTPSConnection(url.hostname, url.port, timeout=10, source_address=(source, 0),
                                             context=ssl.create_default_context(cafile=stack.ca))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


OPERATOR_SPELLINGS = ["/metrics", "/metrics/", "//metrics", "/metrics//", "/%6detrics/", "/metrics?x=1",
                      "/status", "/status/", "/./status/"]


@pytest.mark.parametrize("path", OPERATOR_SPELLINGS)
def test_operator_routes_refused_from_elsewhere_in_every_spelling(stack, path):
    # The router reads /metrics/ as /metrics: an exact nginx location let that spelling
    # through to the public, so the prefix locations must catch every one of these.
    status, body = _get_from(stack, "127.0.0.2", path)
    assert status == 403, body[:200]
    assert b"keygate_requests_total" not in body and b"master_pid" not in body


@pytest.mark.parametrize("path", ["/metrics/", "/status/"])
def test_operator_routes_answer_locally_with_a_trailing_slash(stack, path):
    status, body = _get_from(stack, "127.0.0.1", path)
    assert status == 200
    assert b"keygate_requests_total" in body or b"master_pid" in body


# --- Straight to the pool's socket, as only a broken or hostile front end would ---

def _pool_unchanged(stack, before):
    after = stack.status()
    assert after["restarts"]["crash"] == before["restarts"]["crash"]
    assert sorted(w["pid"] for w in after["workers"]) == sorted(w["pid"] for w in before["workers"])


def test_request_without_https_param_is_refused(stack):
    status, headers, body = fcgi.request(stack.socket, fcgi.base_params(https=False))
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert b"HTTPS" in body
    status, _, _ = fcgi.request(stack.socket, fcgi.base_params(https=False) + [("HTTPS", "off")])
    assert status == 403


def test_bad_fastcgi_input_gets_4xx_and_worker_survives(stack, client):
    before = stack.status()
    cases = [
        ([], 400),                                                              # no params at all
        ([("REQUEST_URI", "/healthz"), ("HTTPS", "on")], 400),                  # no method
        (fcgi.base_params(uri=b"/api/\xff\xfe"), 400),                          # invalid UTF-8 path
        (fcgi.base_params(uri="/api/%ff%fe"), 400),                             # escapes to invalid UTF-8
        (fcgi.base_params(method="g e t"), 400),                                # malformed method
        (fcgi.base_params(HTTP_X_HUGE="a" * 200_000), 431),                     # huge header value
        (fcgi.base_params(CONTENT_LENGTH="12abc"), 400),                        # bad Content-Length
        (fcgi.base_params(CONTENT_LENGTH="99999999999999999999"), 400),         # absurd Content-Length
    ]
    for params, expected in cases:
        status, headers, body = fcgi.request(stack.socket, params)
        assert status == expected, (params[:3], status, body)
        assert headers["content-type"] == "application/problem+json"
        assert len(headers["x-request-id"]) >= 16
    # A body shorter than its Content-Length (stdin ends early).
    status, _, _ = fcgi.request(stack.socket, fcgi.base_params(method="POST", CONTENT_LENGTH="100"), body=b"short")
    assert status == 400
    assert client.get(stack.base + "/healthz").status_code == 200
    _pool_unchanged(stack, before)


def test_hostile_request_id_is_replaced(stack):
    params = [p for p in fcgi.base_params() if p[0] != "REQUEST_ID"] + [("REQUEST_ID", "abc\r\nSet-Cookie: x=1")]
    status, headers, _ = fcgi.request(stack.socket, params)
    assert status == 200
    assert "set-cookie" not in headers
    assert headers["x-request-id"] != "abc"
    assert all(c in "0123456789abcdef" for c in headers["x-request-id"])


def test_openapi_document_is_served_as_checked_in(stack, client):
    import json
    r = client.get(stack.base + "/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "docs", "openapi.json"), "rb") as f:
        assert r.content == f.read()
    document = json.loads(r.content)
    assert document["openapi"].startswith("3.1") and "/api/v1/admin/api-keys" in document["paths"]


def _send_then_probe(stack, params, body=b""):
    """Sends a whole request (stdin ended), reads until the responder's end of stream,
    then tries to write one more byte. Returns (status, whether the write was refused):
    refused means the responder had closed its socket outright; accepted means it was
    still lingering (reading and discarding until we close)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(stack.socket)
    try:
        data = fcgi._record(fcgi.BEGIN_REQUEST, struct.pack(">HB5x", 1, 0))
        data += fcgi._record(fcgi.PARAMS, fcgi.encode_params(params)) + fcgi._record(fcgi.PARAMS, b"")
        if body:
            data += fcgi._record(fcgi.STDIN, body)
        s.sendall(data + fcgi._record(fcgi.STDIN, b""))
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        status = int(received.split(b"Status: ", 1)[1][:3])
        time.sleep(0.1)  # the responder's close has certainly happened by now
        try:
            s.sendall(b"x" * 65536)
            s.sendall(b"x" * 65536)
            refused = False
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        return status, refused
    finally:
        s.close()


def test_fully_read_request_is_closed_at_once_without_linger(stack):
    # Everything nginx sent was read, so the worker closes without waiting for nginx.
    assert _send_then_probe(stack, fcgi.base_params()) == (200, True)
    assert _send_then_probe(stack, fcgi.base_params(method="POST", uri="/healthz", CONTENT_LENGTH="3"), b"abc") == (405, True)


def test_unread_body_keeps_the_linger_so_the_answer_is_not_reset(stack):
    # A 413 leaves the body unread: closing then would reset the connection under the
    # web server. libfcgi's linger stays: the worker drains until the peer closes.
    big = b"x" * (1024 * 1024 + 1)
    status, refused = _send_then_probe(stack, fcgi.base_params(method="POST", CONTENT_LENGTH=str(len(big))), big)
    assert (status, refused) == (413, False)
