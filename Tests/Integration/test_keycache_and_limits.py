"""The host's shared memory at work, over HTTPS through nginx to the real pool: the
validated-key cache and its invalidation (same host and other hosts), exact rate limits
and quotas across workers, the usage ring and housekeeper, the verification routes with
nginx auth_request, and PostgreSQL outages. (Named to run before test_keys, whose last
test searches the database and logs for every raw key created here too.)"""
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from test_database import holding_key_row, hot_standby, pg_ctl, pg_env, psql
from test_keys import ADMIN, CREATED_KEYS, Api, admin_key, problem  # noqa: F401 (fixture)


@pytest.fixture()
def api(stack, admin_key):  # noqa: F811
    return Api(stack, admin_key)


def own_key(api, key, base=None):
    return api.session.get((base or api.stack.base) + "/api/v1/auth/key", headers={"X-API-Key": key}, timeout=10)


def use_through_every_worker(api, key, base=None, times=24, status=None):
    """Sequential requests (at least `times`) until every worker of the pool has served
    one since the call began, so each has looked the key up: checked on the scoreboard,
    not assumed from the count. `status` reads the pool's (the main pool's by default)."""
    status = status or api.stack.status
    before = {w["pid"]: w["requests"] for w in status()["workers"]}
    sent = 0
    while True:
        codes = [own_key(api, key, base).status_code for _ in range(8)]
        assert codes == [200] * 8, codes
        sent += 8
        workers = [w for w in status()["workers"] if w["state"] in ("idle", "busy")]
        if sent >= times and workers and all(w["requests"] > before.get(w["pid"], 0) for w in workers):
            return
        assert sent < 400, f"some worker never served the key: {workers}"


def cache_stats(status):
    assert status["key_cache"] is not None, status
    return status["key_cache"]


# --- the cache and its invalidation ---

def test_known_keys_are_answered_from_the_cache(stack, api):
    key = api.create_key(scopes=["self"])["key"]
    before = cache_stats(stack.status())
    use_through_every_worker(api, key)
    after = cache_stats(stack.status())
    # The cache is the host's, not a worker's: one database lookup, by whichever worker
    # came first (two, if the creation's own NOTIFY dropped the entry after it was
    # stored), fewer than the pool has workers; every other request was a hit.
    workers = len(stack.status()["workers"])
    assert 1 <= after["misses"] - before["misses"] <= 2 < workers
    assert after["hits"] - before["hits"] >= 22
    assert after["entries"] >= 1


@pytest.mark.parametrize("change", ["revoke", "delete", "rotate", "scope_edit", "expire"])
def test_a_change_reaches_every_worker_before_the_call_returns(api, change):
    created = api.create_key(scopes=["self"])
    key, key_id = created["key"], created["id"]
    use_through_every_worker(api, key)
    if change == "revoke":
        r = api.call("PATCH", f"{ADMIN}/api-keys/{key_id}", json={"active": False})
    elif change == "delete":
        r = api.call("DELETE", f"{ADMIN}/api-keys/{key_id}")
    elif change == "rotate":
        r = api.call("POST", f"{ADMIN}/api-keys/{key_id}/rotate", json={"grace_period_seconds": 0})
        CREATED_KEYS.append(r.json()["key"])
    elif change == "scope_edit":
        r = api.call("PATCH", f"{ADMIN}/api-keys/{key_id}", json={"scopes": ["keys:read"]})
    else:
        soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
        r = api.call("PATCH", f"{ADMIN}/api-keys/{key_id}", json={"expires_at": soon})
        use_through_every_worker(api, key)  # cached again, with its expiry
        time.sleep(2.1)
    assert r.status_code in (200, 201, 204), r.text
    expected = 403 if change == "scope_edit" else 401
    # The very next request, through whichever worker, sees the change.
    assert [own_key(api, key).status_code for _ in range(24)] == [expected] * 24


def test_restore_and_new_keys_are_never_refused_from_the_cache(stack, api):
    created = api.create_key(scopes=["self"])
    api.call("PATCH", f"{ADMIN}/api-keys/{created['id']}", json={"active": False})
    assert [own_key(api, created["key"]).status_code for _ in range(10)] == [401] * 10
    api.call("PATCH", f"{ADMIN}/api-keys/{created['id']}", json={"active": True})
    assert [own_key(api, created["key"]).status_code for _ in range(10)] == [200] * 10
    # A key that no longer exists is remembered as unknown: repeats cost no database read.
    gone = api.create_key(scopes=["self"])
    assert api.call("DELETE", f"{ADMIN}/api-keys/{gone['id']}").status_code == 204
    before = cache_stats(stack.status())["unknown_hits"]
    assert [own_key(api, gone["key"]).status_code for _ in range(5)] == [401] * 5
    assert cache_stats(stack.status())["unknown_hits"] - before >= 4
    # A created key is known at once.
    fresh = api.create_key(scopes=["self"])
    assert own_key(api, fresh["key"]).status_code == 200


def test_cli_revocation_applies_on_this_host_at_once(stack, api):
    created = api.create_key(scopes=["self"])
    use_through_every_worker(api, created["key"])
    out = subprocess.run([stack.bin, "keys", "revoke", created["id"], "--config", stack.config],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [own_key(api, created["key"]).status_code for _ in range(16)] == [401] * 16


def test_another_host_drops_a_revoked_key_within_a_second(stack, api, aux_pool):
    pool = aux_pool(workers=2)
    created = api.create_key(scopes=["self"])
    use_through_every_worker(api, created["key"], base=stack.aux_base, times=12, status=pool.status)
    assert cache_stats(pool.status())["hits"] >= 8
    # Revoked through the main pool ("host A"); the aux pool ("host B") has it cached.
    assert api.call("PATCH", f"{ADMIN}/api-keys/{created['id']}", json={"active": False}).status_code == 200
    revoked_at = time.monotonic()
    while own_key(api, created["key"], stack.aux_base).status_code != 401:
        assert time.monotonic() - revoked_at < 1.0, "the other host still accepts the revoked key"
        time.sleep(0.01)
    assert [own_key(api, created["key"], stack.aux_base).status_code for _ in range(8)] == [401] * 8


def test_worker_killed_holding_the_cache_lock_wedges_and_corrupts_nothing(stack, api, aux_pool):
    pool = aux_pool(workers=2, request_timeout=60)
    created = api.create_key(scopes=["self"])
    use_through_every_worker(api, created["key"], base=stack.aux_base, times=8, status=pool.status)
    session = stack.session()
    holder = threading.Thread(target=lambda: session.get(stack.aux_base + "/debug/hold-key-cache-lock",
                                                          headers={"X-API-Key": created["key"]}, timeout=30), daemon=True)
    holder.start()
    deadline = time.monotonic() + 10
    busy = []
    while not busy:
        assert time.monotonic() < deadline, "no worker took the lock"
        busy = [w["pid"] for w in pool.status()["workers"] if w["state"] == "busy"]
        time.sleep(0.02)
    os.kill(busy[0], signal.SIGKILL)
    holder.join(timeout=30)
    # The entry it was "writing" is dropped, not served torn; every worker keeps going.
    codes = [own_key(api, created["key"], stack.aux_base).status_code for _ in range(16)]
    assert codes == [200] * 16
    status = pool.status()
    assert status["key_cache"]["lock_recoveries"] == 1
    assert status["restarts"]["crash"] == 1


# --- rate limits and quotas ---

def test_64_concurrent_clients_get_exactly_n_per_minute(api):
    created = api.create_key(scopes=["self"], rate_limit_per_minute=25)
    key = created["key"]
    session_local = threading.local()

    def call(_):
        if not hasattr(session_local, "s"):
            session_local.s = api.stack.session()
        r = session_local.s.get(api.stack.base + "/api/v1/auth/key", headers={"X-API-Key": key}, timeout=30)
        return r.status_code, r.headers

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(call, range(64 * 3)))
    codes = [code for code, _ in results]
    assert codes.count(200) == 25 and codes.count(429) == 64 * 3 - 25, codes
    for code, headers in results:
        assert headers["RateLimit-Limit"] == "25" and headers["X-RateLimit-Limit"] == "25"
        # The twins agree, and the reset is within the minute window.
        assert headers["X-RateLimit-Remaining"] == headers["RateLimit-Remaining"]
        assert headers["X-RateLimit-Reset"] == headers["RateLimit-Reset"] and 0 <= int(headers["RateLimit-Reset"]) <= 61
        if code == 429:
            assert headers["RateLimit-Remaining"] == "0"
            assert 1 <= int(headers["Retry-After"]) <= 61
    remaining = sorted(int(h["RateLimit-Remaining"]) for c, h in results if c == 200)
    assert remaining == list(range(25))  # each success saw its own count
    # Refused requests did not count: still exactly the 25 in the window, still refused.
    r = own_key(api, key)
    assert r.status_code == 429 and r.headers["RateLimit-Remaining"] == "0"
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_requests_refused_for_a_missing_scope_count_against_no_limit(api):
    # A key's 403s (here: admin routes it has no scope for) use up neither its window nor
    # its quota: the scope is checked before the limiter counts, as on the verify routes.
    created = api.create_key(scopes=["self"], rate_limit_per_minute=3, quota_daily=3)
    key = created["key"]
    for path in ["/api-keys", "/symbols", "/users", "/audit-log"]:
        problem(api.call("GET", ADMIN + path, key=key), 403)
    problem(api.call("POST", ADMIN + "/api-keys", key=key, json={"name": "x"}), 403)
    assert [own_key(api, key).status_code for _ in range(3)] == [200] * 3
    problem(own_key(api, key), 429)


def test_the_api_key_query_parameter_works_only_where_enabled(stack, api, aux_pool):
    # Off by default (the main pool); on where configured. nginx's access log keeps no
    # query strings, which the last test of the run checks for every key.
    aux_pool(workers=1, allow_query_key="on")
    key = api.create_key(scopes=["self"])
    assert api.session.get(stack.aux_base + "/api/v1/auth/key", params={"api_key": key["key"]}, timeout=10).status_code == 200
    problem(api.session.get(stack.base + "/api/v1/auth/key", params={"api_key": key["key"]}, timeout=10), 401)
    # A header still wins over the parameter.
    other = api.create_key(scopes=["self"])
    r = api.session.get(stack.aux_base + "/api/v1/auth/key", params={"api_key": key["key"]}, headers={"X-API-Key": other["key"]}, timeout=10)
    assert r.status_code == 200 and r.json()["id"] == other["id"]


def test_burst_and_hourly_limits_apply_end_to_end(api):
    bursty = api.create_key(scopes=["self"], rate_limit_per_minute=100, burst=3)["key"]
    codes = [own_key(api, bursty).status_code for _ in range(6)]  # well inside one second
    assert codes == [200] * 3 + [429] * 3, codes
    r = own_key(api, bursty)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 2
    time.sleep(1.1)
    assert own_key(api, bursty).status_code == 200  # the second has passed
    hourly = api.create_key(scopes=["self"], rate_limit_per_minute=100, rate_limit_per_hour=4)["key"]
    codes = [own_key(api, hourly).status_code for _ in range(6)]
    assert codes == [200] * 4 + [429] * 2, codes
    r = own_key(api, hourly)
    assert r.headers["RateLimit-Limit"] == "4" and int(r.headers["Retry-After"]) > 60  # the hour's window, not the minute's


def test_unlimited_keys_carry_no_rate_limit_headers(api):
    key = api.create_key(scopes=["self"])["key"]
    r = own_key(api, key)
    assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


def wait_for(predicate, timeout=5.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.05)


def test_daily_quota_is_enforced_and_survives_a_new_host(stack, api, aux_pool):
    created = api.create_key(scopes=["self"], quota_daily=5)
    key = created["key"]
    assert [own_key(api, key).status_code for _ in range(3)] == [200] * 3
    body = own_key(api, key).json()
    assert body["quota"]["daily_used"] == 4 and body["quota"]["daily_remaining"] == 1
    r = own_key(api, key)
    assert r.status_code == 200 and r.headers["RateLimit-Remaining"] == "0"
    r = own_key(api, key)
    problem(r, 429)
    assert 1 <= int(r.headers["Retry-After"]) <= 86_400
    # The housekeeper stores the counted requests; a pool started later (another host,
    # or this one after a restart) starts from them.
    wait_for(lambda: psql(f"SELECT coalesce(sum(requests), 0) FROM api_key_quota_usage WHERE key_id = '{created['id']}'").stdout.strip() == "5",
             message="quota counts stored")
    aux_pool(workers=2)
    problem(own_key(api, key, stack.aux_base), 429)


def test_a_rotation_continues_its_keys_quota_and_rate_window(stack, api, aux_pool):
    # Rotating (a key may rotate itself) must not hand out a fresh quota, and during the
    # grace period the old and the new key together get one key's limits, not two.
    user = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"}).json()

    def rotate_itself(created, key):
        r = api.call("POST", f"/api/v1/auth/keys/{created['id']}/rotate", key=key, json={"grace_period_seconds": 3600})
        assert r.status_code == 201, r.text
        CREATED_KEYS.append(r.json()["key"])
        return r.json()

    created = api.create_key(scopes=["self"], user_id=user["id"], quota_daily=7)
    old = created["key"]
    assert [own_key(api, old).status_code for _ in range(3)] == [200] * 3
    successor = rotate_itself(created, old)
    assert successor["lineage_id"] == created["id"] and created["lineage_id"] == created["id"]
    new = successor["key"]
    body = own_key(api, new).json()  # the three, the rotation itself, and this one
    assert body["quota"]["daily_used"] == 5 and body["quota"]["daily_remaining"] == 2
    assert own_key(api, old).status_code == 200  # the old key, in its grace period: the same count
    r = own_key(api, new)
    assert r.status_code == 200 and r.headers["RateLimit-Remaining"] == "0"
    problem(own_key(api, new), 429)
    problem(own_key(api, old), 429)
    # Stored under the lineage: a pool started later (another host) goes on from there,
    # and the usage summary of either key shows the lineage's count.
    wait_for(lambda: psql(f"SELECT coalesce(sum(requests), 0) FROM api_key_quota_usage WHERE key_id = '{created['id']}'").stdout.strip() == "7",
             message="quota counts stored for the lineage")
    assert psql(f"SELECT count(*) FROM api_key_quota_usage WHERE key_id = '{successor['id']}'").stdout.strip() == "0"
    assert api.call("GET", f"{ADMIN}/api-keys/{successor['id']}/usage").json()["quota"]["daily_used"] == 7
    aux_pool(workers=2)
    problem(own_key(api, new, stack.aux_base), 429)

    # A key made through self-service spends its maker's budget: minting keys does not
    # multiply a user's quota.
    maker = api.create_key(scopes=["self"], user_id=user["id"], quota_daily=4)
    r = api.call("POST", "/api/v1/auth/keys", key=maker["key"], json={"name": "minted", "scopes": ["self"]})
    assert r.status_code == 201, r.text
    CREATED_KEYS.append(r.json()["key"])
    minted = r.json()["key"]
    assert r.json()["quota_daily"] == 4 and r.json()["lineage_id"] == maker["id"]
    assert [own_key(api, minted).status_code for _ in range(2)] == [200, 200]  # the POST was the first
    assert own_key(api, maker["key"]).status_code == 200  # the fourth
    problem(own_key(api, minted), 429)
    problem(own_key(api, maker["key"]), 429)

    # One minute window for both keys of a rotation.
    created = api.create_key(scopes=["self"], user_id=user["id"], rate_limit_per_minute=5)
    old = created["key"]
    assert [own_key(api, old).status_code for _ in range(2)] == [200] * 2
    new = rotate_itself(created, old)["key"]  # the third request of the minute
    assert [own_key(api, key).status_code for key in (new, old)] == [200, 200]
    problem(own_key(api, new), 429)
    problem(own_key(api, old), 429)
    # Deleting the old key (the clean-up after a rotation) leaves the lineage's window.
    assert api.call("DELETE", f"{ADMIN}/api-keys/{created['id']}").status_code == 204
    problem(own_key(api, new), 429)


# --- usage ---

def test_every_request_is_recorded_with_last_use_and_counts(api):
    created = api.create_key(scopes=["self"])
    key, key_id = created["key"], created["id"]
    for _ in range(20):
        assert own_key(api, key).status_code == 200
    for _ in range(5):
        problem(api.call("DELETE", f"/api/v1/auth/keys/{uuid.uuid4()}", key=key), 404)
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{key_id}'").stdout.strip() == "25",
             message="25 usage rows")
    rows = psql(f"SELECT method, route, status_code, remote_addr FROM api_key_usage WHERE key_id = '{key_id}' "
                "GROUP BY 1, 2, 3, 4 ORDER BY 3").stdout.splitlines()
    assert rows == ["GET|GET /api/v1/auth/key|200|127.0.0.1", "DELETE|DELETE /api/v1/auth/keys/{id}|404|127.0.0.1"]
    shown = api.call("GET", f"{ADMIN}/api-keys/{key_id}").json()
    assert shown["request_count"] == 25 and shown["last_used_at"]
    assert shown["last_used_endpoint"].startswith("DELETE /api/v1/auth/keys/")
    usage = api.call("GET", f"{ADMIN}/api-keys/{key_id}/usage").json()
    assert usage["total"] == 25 and usage["by_status_class"] == {"2xx": 20, "4xx": 5}
    assert usage["by_route"] == {"GET /api/v1/auth/key": 20, "DELETE /api/v1/auth/keys/{id}": 5}
    assert usage["latency_ms"]["p50"] is not None and usage["latency_ms"]["p99"] >= usage["latency_ms"]["p50"]
    log = api.call("GET", f"{ADMIN}/api-keys/{key_id}/audit", params={"limit": 100}).json()
    assert len(log["items"]) == 25


def test_a_full_usage_ring_drops_and_counts_without_blocking(stack, api, aux_pool):
    # The housekeeper of this pool cannot reach its database, so nothing drains.
    pool = aux_pool(workers=2, usage_ring_entries=64, database_direct_url="host=127.0.0.1 port=1 dbname=none connect_timeout=1")
    key = api.create_key(scopes=["self"])["key"]
    started = time.monotonic()
    codes = [own_key(api, key, stack.aux_base).status_code for _ in range(100)]
    assert codes == [200] * 100
    assert time.monotonic() - started < 10
    ring = pool.status()["usage_ring"]
    assert ring["capacity"] == 64 and ring["pending"] == 64 and ring["dropped"] == 36
    metrics = api.session.get(stack.aux_base + "/metrics", timeout=10).text
    assert "keygate_usage_dropped_total 36" in metrics


# --- verification routes ---

def test_auth_request_protects_an_upstream(stack, api):
    created = api.create_key(scopes=["symbols:read"], allowed_paths=["/market-data/eu"])
    key = created["key"]
    r = api.session.get(stack.base + "/market-data/eu/quotes", headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen == {"key_id": created["id"], "owner": "", "scopes": "symbols:read", "api_key": "", "uri": "/market-data/eu/quotes",
                    "request_uri": "/market-data/eu/quotes"}
    assert api.session.get(stack.base + "/market-data/eu/quotes", timeout=10).status_code == 401
    assert api.session.get(stack.base + "/market-data/us/quotes", headers={"X-API-Key": key}, timeout=10).status_code == 403
    # nginx normalises the path before it is checked: no way around allowed_paths.
    r = api.session.get(stack.base + "/market-data/eu/../us/quotes", headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 403
    # ...and the upstream gets the path keygate checked, not the client's raw form.
    r = api.session.get(stack.base + "/market-data/us/%2e%2e/eu/quotes", headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200 and r.json()["request_uri"] == "/market-data/eu/quotes", r.text
    wrong_scope = api.create_key(scopes=["self"])["key"]
    assert api.session.get(stack.base + "/market-data/eu/x", headers={"X-API-Key": wrong_scope}, timeout=10).status_code == 403


def test_auth_request_rate_limit_is_429_with_retry_after(stack, api):
    key = api.create_key(scopes=["symbols:read"], rate_limit_per_minute=2)["key"]
    codes = [api.session.get(stack.base + "/market-data/x", headers={"X-API-Key": key}, timeout=10) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[0].headers["RateLimit-Remaining"] == "1"
    assert int(codes[2].headers["Retry-After"]) >= 1 and codes[2].headers["RateLimit-Remaining"] == "0"
    assert codes[2].headers["Content-Type"] == "application/problem+json"
    # Answered from nginx's own locations (one inside an if): still HSTS and the request id.
    for r in codes:
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert len(r.headers["X-Request-Id"]) == 32
    assert codes[2].json()["request_id"] == codes[2].headers["X-Request-Id"]


def test_verify_route_called_directly(stack, api):
    created = api.create_key(scopes=["self", "symbols:read"])
    r = api.session.get(stack.base + "/api/v1/auth/verify", headers={"Authorization": f"Bearer {created['key']}"}, timeout=10)
    assert r.status_code == 204
    assert r.headers["X-Key-Id"] == created["id"] and r.headers["X-Key-Scopes"] == "self symbols:read"
    problem(api.session.get(stack.base + "/api/v1/auth/verify", headers={"X-API-Key": "mdw_live_nope"}, timeout=10), 401)


def test_post_keys_verify(api):
    verifier_key = api.create_key(scopes=["keys:verify"])
    verifier = verifier_key["key"]
    target = api.create_key(scopes=["symbols:read"], allowed_ips=["10.1.0.0/16"], rate_limit_per_minute=100)

    def verify(body, key=verifier):
        return api.call("POST", "/api/v1/keys/verify", key=key, json=body)

    r = verify({"key": target["key"], "scope": "symbols:read", "path": "/market-data/x", "ip": "10.1.2.3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["valid"] is True and body["code"] == "valid" and body["key_id"] == target["id"]
    assert body["scopes"] == ["symbols:read"] and body["ratelimit"]["limit"] == 100 and body["ratelimit"]["remaining"] == 99
    assert "RateLimit-Limit" not in r.headers  # the caller's own key has no limits
    assert verify({"key": target["key"], "scope": "keys:write", "ip": "10.1.2.3"}).json()["code"] == "scope_denied"
    assert verify({"key": target["key"], "ip": "192.0.2.1"}).json()["code"] == "ip_denied"
    assert verify({"key": target["key"]}).json()["code"] == "ip_denied"
    api.call("PATCH", f"{ADMIN}/api-keys/{target['id']}", json={"active": False})
    assert verify({"key": target["key"], "ip": "10.1.2.3"}).json() == {
        "valid": False, "code": "invalid_key", "key_id": None, "owner": None, "scopes": [], "ratelimit": None}
    assert verify({"key": "garbage"}).json()["code"] == "invalid_key"
    problem(verify({"key": target["key"], "scope": "root"}), 422)
    problem(verify({"scope": "self"}), 422)
    problem(verify({"key": target["key"]}, key=api.create_key(scopes=["self"])["key"]), 403)
    r = api.call("POST", "/api/v1/keys/verify", key="", json={"key": target["key"]})  # no key of its own
    problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Usage: one row per call for the verifier (8 calls), one per check for the target
    # while it was identifiable (valid, scope, ip ×2); an invalid key adds nothing to anyone.
    def rows(key_id):
        return psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{key_id}'").stdout.strip()
    wait_for(lambda: rows(verifier_key["id"]) == "8" and rows(target["id"]) == "4", message="verify usage rows")
    time.sleep(0.3)
    assert (rows(verifier_key["id"]), rows(target["id"])) == ("8", "4")


def test_usage_not_stored_before_a_stop_is_stored_after_the_next_start(stack, api, aux_pool):
    # The database is away for the housekeeper when the pool stops: its final drain gives
    # up, and the records stay in the ring file for the next start (they used to be
    # deleted with it, missing from usage and from the quota counts).
    away = aux_pool(workers=1, shutdown_timeout=2,
                    database_direct_url="host=127.0.0.1 port=1 dbname=none connect_timeout=1")
    key = api.create_key(scopes=["self"])
    assert [own_key(api, key["key"], stack.aux_base).status_code for _ in range(4)] == [200] * 4
    wait_for(lambda: away.status()["usage_ring"]["pending"] == 4, message="four records waiting")
    ring = away.status()["usage_ring"]["id"]
    away.stop()
    assert away.process.returncode == 0
    assert "usage records not stored are kept for the next start" in away.log_text()
    assert psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{key['id']}'").stdout.strip() == "0"

    back = aux_pool(workers=1)
    assert "usage records the last run could not store are kept" in back.log_text()
    assert back.status()["usage_ring"]["id"] == ring
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{key['id']}'").stdout.strip() == "4",
             timeout=10, message="the kept records stored")
    wait_for(lambda: back.status()["usage_ring"]["pending"] == 0, message="the ring empty")
    # Stopped with nothing left, the ring goes; the next start makes a new one.
    back.stop()
    assert not os.path.exists(os.path.join(back.dir, "keygate.usage"))


def test_a_batch_the_database_already_has_is_not_stored_again(stack, api, aux_pool):
    # A housekeeper killed between a batch's COMMIT and freeing its cells: its successor
    # must not store that batch twice. Each batch's transaction records how far the ring
    # is stored (usage_ring_progress); the test plays the committed batch by moving that
    # position over records held back by a row lock, then kills the housekeeper.
    pool = aux_pool(workers=1, statement_timeout=300)
    ring = pool.status()["usage_ring"]["id"]
    warm = api.create_key(scopes=["self"])
    assert own_key(api, warm["key"], stack.aux_base).status_code == 200
    wait_for(lambda: psql(f"SELECT stored_through FROM usage_ring_progress WHERE ring_id = '{ring}'").stdout.strip() == "1",
             message="the ring's first batch")
    held = api.create_key(scopes=["self"])
    with holding_key_row(held["id"], 3):
        assert [own_key(api, held["key"], stack.aux_base).status_code for _ in range(3)] == [200] * 3
        wait_for(lambda: "usage batch not stored; retrying" in pool.log_text(), timeout=2.5, message="the batch held back")
        psql(f"UPDATE usage_ring_progress SET stored_through = stored_through + 3 WHERE ring_id = '{ring}'")
        os.kill(pool.status()["housekeeper"]["pid"], signal.SIGKILL)
    wait_for(lambda: "freed, not stored again" in pool.log_text(), timeout=10, message="the successor's reconciling")
    wait_for(lambda: pool.status()["usage_ring"]["pending"] == 0, message="the ring empty")
    assert psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{held['id']}'").stdout.strip() == "0"
    # And on it goes: the next request of that key is stored once.
    assert own_key(api, held["key"], stack.aux_base).status_code == 200
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{held['id']}'").stdout.strip() == "1",
             message="the next request stored")


# --- PostgreSQL outage ---

def test_a_usage_batch_that_times_out_does_not_mark_the_database_down(stack, api, aux_pool):
    # The housekeeper's batch waits on a row lock past its statement timeout: a problem of
    # that batch, not an outage. Workers keep treating the database as up (no 503 for
    # keys with quotas, no cache bypass), and the batch is stored once the lock goes.
    pool = aux_pool(workers=2, statement_timeout=300)
    created = api.create_key(scopes=["self"])
    with holding_key_row(created["id"], 2.5):
        assert own_key(api, created["key"], stack.aux_base).status_code == 200
        wait_for(lambda: "usage batch not stored; retrying" in pool.log_text(), timeout=5, message="the batch timed out")
        assert pool.status()["key_cache"].get("database_down_since") is None  # (absent while up)
        assert "database unreachable" not in pool.log_text()
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{created['id']}'").stdout.strip() == "1",
             timeout=5, message="the batch stored after the lock")


def test_a_read_only_database_is_not_an_outage(stack, api, aux_pool):
    # A demoted primary (or a full disk) refuses the housekeeper's batches, yet still
    # answers reads: the host must not be marked down (that would send keys with quotas to
    # 503 and flap with every health check), and the batch waits in the ring until the
    # database takes writes again.
    role = f"keygate_ro_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE ROLE {role} LOGIN IN ROLE keygate; ALTER ROLE {role} SET default_transaction_read_only = on")
    try:
        direct = stack.settings()["database_direct_url"].replace("user=keygate", f"user={role}")
        assert role in direct
        pool = aux_pool(workers=1, database_direct_url=direct)
        created = api.create_key(scopes=["self"])
        assert own_key(api, created["key"], stack.aux_base).status_code == 200
        wait_for(lambda: "usage batch not stored; retrying" in pool.log_text(), timeout=5, message="the batch refused")
        time.sleep(1.5)  # the housekeeper's health check runs every second
        assert pool.status()["key_cache"].get("database_down_since") is None
        assert "database unreachable" not in pool.log_text()
        assert psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{created['id']}'").stdout.strip() == "0"
        # Writable again (the housekeeper reconnects as a role without the setting): stored.
        psql(f"ALTER ROLE {role} RESET default_transaction_read_only")  # committed before the reconnect
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{created['id']}'").stdout.strip() == "1",
                 timeout=10, message="the batch stored once writable")
        pool.stop()
    finally:
        psql(f"DROP ROLE {role}", check=False)


def test_a_hot_standby_is_not_an_outage(stack, api, aux_pool):
    # What a demoted primary is after a failover: it answers reads and refuses writes and
    # LISTEN (25006). A housekeeper pointed at it must not mark the host down (and flap
    # with every health check), only say what it cannot do.
    with hot_standby() as standby:
        pool = aux_pool(workers=1, database_direct_url=standby)
        created = api.create_key(scopes=["self"])
        assert own_key(api, created["key"], stack.aux_base).status_code == 200
        wait_for(lambda: "usage batch not stored; retrying" in pool.log_text(), timeout=5, message="the batch refused")
        wait_for(lambda: "cannot listen for key changes" in pool.log_text(), timeout=5, message="LISTEN refused")
        time.sleep(1.5)  # the housekeeper's health check runs every second
        assert pool.status()["key_cache"].get("database_down_since") is None
        assert "database unreachable" not in pool.log_text()
        assert pool.log_text().count("cannot listen for key changes") == 1  # once per spell, not every retry
        pool.stop()


def test_a_stop_while_a_batch_cannot_be_stored_keeps_trying_then_stores_it(stack, api, aux_pool):
    # The housekeeper is asked to stop while the database turns its batch away (a row lock
    # past the statement timeout). Its final drain must keep trying for its 5 s, and store
    # the batch once the lock goes, before the pool exits and the ring is gone.
    pool = aux_pool(workers=1, statement_timeout=300)
    created = api.create_key(scopes=["self"])
    with holding_key_row(created["id"], 1.5):
        assert [own_key(api, created["key"], stack.aux_base).status_code for _ in range(3)] == [200] * 3
        wait_for(lambda: "usage batch not stored; retrying" in pool.log_text(), timeout=5, message="the batch held back")
        pool.signal(signal.SIGTERM)
    assert pool.process.wait(timeout=15) == 0
    assert psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{created['id']}'").stdout.strip() == "3"
    assert "not stored before this housekeeper stopped" not in pool.log_text()


def test_postgres_down_cached_keys_verify_uncached_get_503_and_all_recovers(stack, api, aux_pool):
    cached = api.create_key(scopes=["symbols:read"])
    uncached = api.create_key(scopes=["symbols:read"])
    for _ in range(16):
        assert api.session.get(stack.base + "/market-data/x", headers={"X-API-Key": cached["key"]}, timeout=10).status_code == 200
    # A second host configured to trust nothing cached while the database is away.
    strict = aux_pool(workers=2, key_cache_during_outage="off")
    strict_verify = lambda key: api.session.get(stack.aux_base + "/api/v1/auth/verify", headers={"X-API-Key": key}, timeout=30)
    assert [strict_verify(cached["key"]).status_code for _ in range(6)] == [204] * 6
    assert strict.status()["key_cache"]["hits"] >= 2
    # (Only the 16 protected requests: the strict host's six verifications are usage of
    # the same key too, stored whenever its housekeeper gets to them.)
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{cached['id']}' AND path = '/market-data/x'").stdout.strip() == "16",
             message="usage stored before the outage")
    crashes = stack.status()["restarts"]["crash"]
    pg_ctl("-m", "fast", "stop")
    try:
        for _ in range(8):
            r = api.session.get(stack.base + "/market-data/x", headers={"X-API-Key": cached["key"]}, timeout=30)
            assert r.status_code == 200, r.text
        r = api.session.get(stack.base + "/market-data/x", headers={"X-API-Key": uncached["key"]}, timeout=30)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
        r = api.session.get(stack.base + "/api/v1/auth/verify", headers={"X-API-Key": uncached["key"]}, timeout=30)
        problem(r, 503)
        assert int(r.headers["Retry-After"]) > 0
        problem(api.call("GET", f"{ADMIN}/api-keys/{cached['id']}"), 503)
        # The strict host refuses even its cached key once it has seen the outage.
        wait_for(lambda: strict_verify(cached["key"]).status_code == 503, timeout=5, message="strict host refusing")
        assert int(strict_verify(cached["key"]).headers["Retry-After"]) > 0
        assert stack.status()["usage_ring"]["pending"] >= 8
    finally:
        pg_ctl("-o", f"-p {pg_env('KG_PG_PORT')} -k {pg_env('KG_PG_SOCKET')} -c listen_addresses=127.0.0.1",
               "-l", os.path.join(pg_env("KG_PG_DATA"), "server.log"), "start")
    wait_for(lambda: api.session.get(stack.base + "/api/v1/auth/verify", headers={"X-API-Key": uncached["key"]},
                                     timeout=30).status_code == 204, timeout=30, message="recovery")
    wait_for(lambda: strict_verify(cached["key"]).status_code == 204, timeout=10, message="strict host recovery")
    # What was recorded during the outage waited in the ring and is stored now.
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{cached['id']}' AND path = '/market-data/x'").stdout.strip() == "24",
             timeout=10, message="usage from the outage stored")
    assert stack.status()["restarts"]["crash"] == crashes


def test_uncached_lookups_with_prepared_statements_straight_to_postgres(stack, api, aux_pool):
    # A host with the cache off whose workers reach PostgreSQL directly and keep the key
    # lookup as a prepared statement: every request reads the database, a revocation
    # applies to the next request, and a lost server connection costs no request.
    direct = stack.settings()["database_direct_url"]
    pool = aux_pool(workers=2, key_cache_entries=0, database_url=direct, database_prepared_statements="on")
    created = api.create_key(scopes=["self"])
    use_through_every_worker(api, created["key"], base=stack.aux_base, times=10, status=pool.status)
    lookups = "query LIKE '%FROM api_keys WHERE key_hash = $1%' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    assert int(psql(f"SELECT count(*) FROM pg_stat_activity WHERE {lookups}").stdout.strip()) >= 1
    psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {lookups}")
    use_through_every_worker(api, created["key"], base=stack.aux_base, times=10, status=pool.status)
    assert api.call("PATCH", f"{ADMIN}/api-keys/{created['id']}", json={"active": False}).status_code == 200
    assert [own_key(api, created["key"], stack.aux_base).status_code for _ in range(6)] == [401] * 6


@pytest.mark.parametrize("path", ["pgbouncer-function", "direct-prepared"])
def test_an_uncached_lookup_reads_every_field_as_stored(stack, api, aux_pool, path):
    # The lookup by hash reads the stored values as PostgreSQL prints them (uuid, cidr[],
    # timestamptz): a key with every field set must read exactly as the admin route's
    # query reads it, through the PgBouncer function and as a prepared statement.
    settings = {"key_cache_entries": 0}
    if path == "direct-prepared":
        settings.update(database_url=stack.settings()["database_direct_url"], database_prepared_statements="on")
    aux_pool(workers=2, **settings)
    user = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"}).json()
    expires = (datetime.now(timezone.utc) + timedelta(days=3, microseconds=123457)).isoformat().replace("+00:00", "Z")
    old = api.create_key(scopes=["self", "symbols:read"], user_id=user["id"], allowed_paths=["/api/v1/auth/", "/market-data/"],
                         allowed_ips=["127.0.0.0/8", "::1", "2001:db8::/32", "10.1.2.3"], rate_limit_per_minute=1000,
                         rate_limit_per_hour=50000, burst=100, quota_daily=10000, quota_monthly=200000, expires_at=expires)
    new = api.call("POST", f"{ADMIN}/api-keys/{old['id']}/rotate", json={"grace_period_seconds": 3600}).json()
    for key, record in ((old["key"], old), (new["key"], new)):
        r = own_key(api, key, stack.aux_base)
        assert r.status_code == 200, r.text
        looked_up = r.json()
        looked_up.pop("quota")
        stored = api.call("GET", f"{ADMIN}/api-keys/{record['id']}").json()
        volatile = ("last_used_at", "last_used_endpoint", "request_count", "updated_at")
        assert {k: v for k, v in looked_up.items() if k not in volatile} == {k: v for k, v in stored.items() if k not in volatile}
    assert looked_up["rotated_from"] == old["id"] and looked_up["user_id"] == user["id"]
    assert looked_up["allowed_ips"] == ["127.0.0.0/8", "::1/128", "2001:db8::/32", "10.1.2.3/32"]
    assert looked_up["expires_at"] == expires[:23] + "Z"  # the API shows milliseconds
    # The last expiry RFC 3339 can say: read back alike by the lookup, the admin read and
    # the list. One second later (year 10000 in UTC) is refused when given.
    far = api.create_key(scopes=["self"], expires_at="9999-12-31T22:59:59.999+01:00")
    r = own_key(api, far["key"], stack.aux_base)
    assert r.status_code == 200, r.text
    assert r.json()["expires_at"] == "9999-12-31T21:59:59.999Z"
    assert api.call("GET", f"{ADMIN}/api-keys/{far['id']}").json()["expires_at"] == r.json()["expires_at"]
    assert api.call("GET", f"{ADMIN}/api-keys?limit=100").status_code == 200
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "far", "expires_at": "9999-12-31T23:30:00-01:00"}), 422)["field"] == "expires_at"


def test_a_reload_keeps_rate_windows_and_replaces_the_housekeeper(stack, api, aux_pool):
    pool = aux_pool(workers=2)
    key = api.create_key(scopes=["self"], rate_limit_per_minute=3)["key"]
    assert [own_key(api, key, stack.aux_base).status_code for _ in range(3)] == [200] * 3
    old_workers = set(pool.worker_pids())
    old_housekeeper = pool.status()["housekeeper"]["pid"]
    pool.signal(signal.SIGHUP)
    pool.wait_for_workers(2, timeout=10, exclude=old_workers)
    wait_for(lambda: (pool.status()["housekeeper"] or {}).get("pid") not in (None, old_housekeeper),
             timeout=10, message="a new housekeeper")
    # New processes, same shared memory: the minute's three requests still count.
    r = own_key(api, key, stack.aux_base)
    assert r.status_code == 429 and r.headers["RateLimit-Remaining"] == "0"
    assert pool.status()["rate_limits"]["refused"] >= 1


def test_a_killed_housekeeper_is_replaced_and_nothing_recorded_meanwhile_is_lost(stack, api, aux_pool):
    pool = aux_pool(workers=2)
    created = api.create_key(scopes=["self"])
    first = pool.status()["housekeeper"]["pid"]
    os.kill(first, signal.SIGKILL)
    # Requests go on while it is gone; their usage waits in the ring.
    assert [own_key(api, created["key"], stack.aux_base).status_code for _ in range(10)] == [200] * 10
    wait_for(lambda: (pool.status()["housekeeper"] or {}).get("pid") not in (None, first), timeout=5,
             message="a new housekeeper")
    wait_for(lambda: psql(f"SELECT count(*) FROM api_key_usage WHERE key_id = '{created['id']}'").stdout.strip() == "10",
             timeout=5, message="usage stored by the new housekeeper")
    status = pool.status()
    assert status["restarts"]["crash"] == 1 and len(status["workers"]) == 2
    assert status["usage_ring"]["dropped"] == 0 and status["usage_ring"]["lost"] == 0
