"""API keys end to end, over HTTPS through nginx to the pool and PostgreSQL."""
import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import fcgi

ADMIN = "/api/v1/admin"
CREATED_KEYS = []  # every raw key any test saw, for the no-secrets-anywhere test


def every(api, path, **params):
    """Every item of a list route, all pages (the suite writes more than one page of keys
    and audit entries, so one page of 500 would miss the newest)."""
    items, cursor = [], None
    while True:
        body = api.call("GET", path, params={"limit": 500, **params} | ({"cursor": cursor} if cursor else {})).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture(scope="module")
def admin_key(stack):
    path = os.environ.get("KG_ADMIN_KEY_FILE")
    if not path:
        pytest.fail("KG_ADMIN_KEY_FILE is not set: run through scripts/test") if os.environ.get("CI") == "true" else pytest.skip("no admin key")
    with open(path) as f:
        key = f.read().strip()
    CREATED_KEYS.append(key)
    return key


class Api:
    def __init__(self, stack, key):
        self.stack, self.key, self.session = stack, key, stack.session()

    def call(self, method, path, key=None, json=None, headers=None, **kwargs):
        h = {"X-API-Key": key if key is not None else self.key}
        if key == "":
            h = {}
        h.update(headers or {})
        return self.session.request(method, self.stack.base + path, json=json, headers=h, timeout=10, **kwargs)

    def create_key(self, expect=201, **body):
        body.setdefault("name", "test-" + uuid.uuid4().hex[:8])
        r = self.call("POST", ADMIN + "/api-keys", json=body)
        assert r.status_code == expect, r.text
        if r.status_code == 201:
            CREATED_KEYS.append(r.json()["key"])
        return r.json()


@pytest.fixture()
def api(stack, admin_key):
    return Api(stack, admin_key)


def problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["request_id"] == r.headers["X-Request-Id"]
    return body


def in_future(seconds):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# --- creation, reading, listing ---

def test_create_returns_raw_key_once_and_metadata(api):
    created = api.create_key(scopes=["keys:read"], environment="test", rate_limit_per_minute=10, allowed_paths=["/api/v1/admin"])
    assert created["key"].startswith("mdw_test_") and len(created["key"]) == len("mdw_test_") + 38
    assert created["key_prefix"] == created["key"][:12]
    for field in ("id", "name", "key_prefix", "environment", "user_id", "scopes", "allowed_paths", "allowed_ips", "rate_limit_per_minute",
                  "rate_limit_per_hour", "burst", "quota_daily", "quota_monthly", "active", "status", "created_at", "expires_at",
                  "last_used_at", "last_used_endpoint", "request_count", "revoked_at", "rotated_from", "lineage_id"):
        assert field in created, field
    assert created["lineage_id"] == created["id"]
    assert created["status"] == "active" and created["scopes"] == ["keys:read"]
    shown = api.call("GET", f"{ADMIN}/api-keys/{created['id']}").json()
    assert "key" not in shown and "key_hash" not in shown
    assert {k: v for k, v in created.items() if k != "key"} == shown


def test_list_filters_and_paginates_every_key_exactly_once(api):
    ids = {api.create_key(environment="test", scopes=[])["id"] for _ in range(5)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "environment": "test"} | ({"cursor": cursor} if cursor else {})
        body = api.call("GET", ADMIN + "/api-keys", params=params).json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        assert all(item["environment"] == "test" and "key" not in item for item in body["items"])
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen)) and pages >= 3
    problem(api.call("GET", ADMIN + "/api-keys", params={"limit": 0}), 400)
    problem(api.call("GET", ADMIN + "/api-keys", params={"limit": 501}), 400)
    problem(api.call("GET", ADMIN + "/api-keys", params={"cursor": "garbage"}), 400)
    problem(api.call("GET", ADMIN + "/api-keys", params={"status": "weird"}), 400)
    # Well-formed but beyond any time this service issues: 400, not the database's overflow.
    huge = f"9223372036854775807.{uuid.uuid4()}"
    for path in ("/api-keys", "/users"):
        assert problem(api.call("GET", ADMIN + path, params={"cursor": huge}), 400)["title"], path
    problem(api.call("GET", f"{ADMIN}/api-keys/{ids.pop()}/audit", params={"cursor": "9223372036854775807"}), 400)
    problem(api.call("GET", ADMIN + "/audit-log", params={"actor_key_id": "not-a-uuid"}), 400)


def test_unknown_key_id_is_404(api):
    problem(api.call("GET", f"{ADMIN}/api-keys/{uuid.uuid4()}"), 404)
    problem(api.call("GET", f"{ADMIN}/api-keys/not-a-uuid"), 404)
    problem(api.call("PATCH", f"{ADMIN}/api-keys/{uuid.uuid4()}", json={"name": "x"}), 404)
    problem(api.call("DELETE", f"{ADMIN}/api-keys/{uuid.uuid4()}"), 404)
    problem(api.call("POST", f"{ADMIN}/api-keys/{uuid.uuid4()}/rotate", json={}), 404)


@pytest.mark.parametrize("body,status,field", [
    (b"{not json", 400, None),
    (b"[]", 400, None),
    (b"", 400, None),
    (b'{"scopes": ["keys:read"]}', 422, "name"),
    (b'{"name": 5}', 422, "name"),
    (b'{"name": ""}', 422, "name"),
    (b'{"name": "x", "scopes": ["root"]}', 422, "scopes[0]"),
    (b'{"name": "x", "environment": "prod"}', 422, "environment"),
    (b'{"name": "x", "rate_limit_per_minute": 0}', 422, "rate_limit_per_minute"),
    (b'{"name": "x", "allowed_ips": ["300.1.1.1"]}', 422, "allowed_ips[0]"),
    (b'{"name": "x", "allowed_paths": ["api"]}', 422, "allowed_paths[0]"),
    (b'{"name": "x", "expires_at": "tomorrow"}', 422, "expires_at"),
    (b'{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}', 422, "expires_at"),
    (b'{"name": "x", "expires_in_days": 0}', 422, "expires_in_days"),
    (b'{"name": "x", "user_id": "nope"}', 422, "user_id"),
])
def test_bad_create_bodies_name_the_field_and_change_nothing(api, body, status, field):
    before = len(every(api, ADMIN + "/api-keys"))
    r = api.call("POST", ADMIN + "/api-keys", data=body, headers={"Content-Type": "application/json"})
    payload = problem(r, status)
    if field:
        assert payload["field"] == field
    assert len(every(api, ADMIN + "/api-keys")) == before


def test_user_must_exist_and_plan_tier_gives_default_limits(api):
    problem(api.call("POST", ADMIN + "/api-keys", json={"name": "x", "user_id": str(uuid.uuid4())}), 422)
    user = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "plan_tier": "free"}).json()
    key = api.create_key(user_id=user["id"], rate_limit_per_minute=5)
    assert key["rate_limit_per_minute"] == 5  # given
    assert key["rate_limit_per_hour"] == 1000 and key["quota_daily"] == 10000  # free tier defaults


# --- the one 401 ---

def test_missing_malformed_unknown_expired_revoked_all_get_the_same_401(api):
    expiring = api.create_key(scopes=["self"], expires_at=in_future(2))
    revoked = api.create_key(scopes=["self"])
    api.call("PATCH", f"{ADMIN}/api-keys/{revoked['id']}", json={"active": False})
    time.sleep(2.5)
    unknown = "mdw_live_" + "A" * 32
    import zlib
    def with_checksum(head):
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        value, digits = zlib.crc32(head.encode()), ""
        for _ in range(6):
            digits = alphabet[value % 62] + digits
            value //= 62
        return head + digits
    attempts = {
        "missing": {},
        "malformed": {"X-API-Key": "not-a-key"},
        "bad checksum": {"X-API-Key": unknown + "000000"},
        "unknown": {"X-API-Key": with_checksum(unknown)},
        "expired": {"X-API-Key": expiring["key"]},
        "revoked": {"Authorization": "Bearer " + revoked["key"]},
    }
    bodies = {}
    for name, headers in attempts.items():
        r = api.session.get(api.stack.base + "/api/v1/auth/key", headers=headers, timeout=10)
        body = problem(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="keygate"'
        del body["request_id"]
        bodies[name] = body
    assert len({repr(sorted(b.items())) for b in bodies.values()}) == 1, bodies


def test_bearer_and_header_both_work_query_parameter_does_not(api):
    assert api.session.get(api.stack.base + "/api/v1/auth/key", headers={"Authorization": "Bearer " + api.key}).status_code == 200
    assert api.session.get(api.stack.base + "/api/v1/auth/key", headers={"X-API-Key": api.key}).status_code == 200
    problem(api.session.get(api.stack.base + "/api/v1/auth/key", params={"api_key": api.key}), 401)


# --- 403: scope, path, IP ---

def test_scope_path_and_ip_denials(api):
    reader = api.create_key(scopes=["keys:read"])
    problem(api.call("POST", ADMIN + "/api-keys", key=reader["key"], json={"name": "x"}), 403)
    problem(api.call("GET", ADMIN + "/users", key=reader["key"]), 403)
    assert api.call("GET", ADMIN + "/api-keys", key=reader["key"]).status_code == 200

    pathed = api.create_key(scopes=["keys:read", "users:read"], allowed_paths=["/api/v1/admin/users"])
    assert api.call("GET", ADMIN + "/users", key=pathed["key"]).status_code == 200
    problem(api.call("GET", ADMIN + "/api-keys", key=pathed["key"]), 403)

    elsewhere = api.create_key(scopes=["keys:read"], allowed_ips=["10.1.2.0/24"])
    problem(api.call("GET", ADMIN + "/api-keys", key=elsewhere["key"]), 403)
    # A client claiming an allowed address in headers changes nothing.
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        value = "for=10.1.2.3" if header == "Forwarded" else "10.1.2.3"
        problem(api.call("GET", ADMIN + "/api-keys", key=elsewhere["key"], headers={header: value}), 403)
    local = api.create_key(scopes=["keys:read"], allowed_ips=["127.0.0.0/8", "::1"])
    assert api.call("GET", ADMIN + "/api-keys", key=local["key"]).status_code == 200


def test_no_privilege_escalation(api):
    writer = api.create_key(scopes=["keys:write", "keys:read"])
    problem(api.call("POST", ADMIN + "/api-keys", key=writer["key"], json={"name": "x", "scopes": ["admin"]}), 403)
    problem(api.call("POST", ADMIN + "/api-keys", key=writer["key"], json={"name": "x", "scopes": ["users:write"]}), 403)
    ok = api.call("POST", ADMIN + "/api-keys", key=writer["key"], json={"name": "x", "scopes": ["keys:read"]})
    assert ok.status_code == 201
    CREATED_KEYS.append(ok.json()["key"])
    mine = ok.json()["id"]
    problem(api.call("PATCH", f"{ADMIN}/api-keys/{mine}", key=writer["key"], json={"scopes": ["admin"]}), 403)
    stronger = api.create_key(scopes=["users:write"])
    problem(api.call("PATCH", f"{ADMIN}/api-keys/{stronger['id']}", key=writer["key"], json={"active": False}), 403)
    problem(api.call("DELETE", f"{ADMIN}/api-keys/{stronger['id']}", key=writer["key"]), 403)
    problem(api.call("POST", f"{ADMIN}/api-keys/{stronger['id']}/rotate", key=writer["key"], json={}), 403)
    # Self-service cannot exceed the caller's scopes either.
    user = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"}).json()
    selfish = api.create_key(scopes=["self"], user_id=user["id"])
    problem(api.call("POST", "/api/v1/auth/keys", key=selfish["key"], json={"name": "x", "scopes": ["keys:read"]}), 403)
    assert api.call("GET", f"{ADMIN}/api-keys/{stronger['id']}").json()["active"] is True


# --- changes take effect on the next request ---

def test_revoke_restore_delete_take_effect_on_the_next_request(api):
    key = api.create_key(scopes=["self"])
    assert api.call("GET", "/api/v1/auth/key", key=key["key"]).status_code == 200
    r = api.call("PUT", f"{ADMIN}/api-keys/{key['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
    problem(api.call("GET", "/api/v1/auth/key", key=key["key"]), 401)
    r = api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"active": True})
    assert r.json()["status"] == "active" and r.json()["revoked_at"] is None
    assert api.call("GET", "/api/v1/auth/key", key=key["key"]).status_code == 200
    assert api.call("DELETE", f"{ADMIN}/api-keys/{key['id']}").status_code == 204
    problem(api.call("GET", "/api/v1/auth/key", key=key["key"]), 401)
    problem(api.call("GET", f"{ADMIN}/api-keys/{key['id']}"), 404)
    actions = [e["action"] for e in every(api, ADMIN + "/audit-log")
               if e["target_id"] == key["id"]]
    assert actions == ["key.created", "key.revoked", "key.restored", "key.deleted"]


def test_edits_apply_and_are_audited(api):
    key = api.create_key(scopes=["keys:read"], rate_limit_per_minute=5)
    r = api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"name": "renamed", "rate_limit_per_minute": None, "scopes": ["self"]})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "renamed" and body["rate_limit_per_minute"] is None and body["scopes"] == ["self"]
    problem(api.call("GET", ADMIN + "/api-keys", key=key["key"]), 403)  # lost keys:read at once
    problem(api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={}), 422)
    problem(api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"burst": -1}), 422)
    # A past expiry is refused as at creation (before 1970 it once crashed the formatter).
    for past in ("1969-02-05T19:33:17.9-08:34", "2001-01-01T00:00:00Z"):
        assert problem(api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"expires_at": past}), 422)["field"] == "expires_at"
    entry = [e for e in every(api, ADMIN + "/audit-log")
             if e["target_id"] == key["id"] and e["action"] == "key.updated"][0]
    assert entry["actor_key_id"] and entry["remote_addr"] == "127.0.0.1" and len(entry["request_id"]) == 32
    assert set(entry["details"]["changed"].split()) == {"name", "rate_limit_per_minute", "scopes"}


def test_update_bodies_are_snake_case_and_name_what_cannot_change(api):
    key = api.create_key(scopes=["self"], rate_limit_per_minute=5)
    url = f"{ADMIN}/api-keys/{key['id']}"
    # Fixed at creation: a 422 naming the field, not a silent 200.
    for field, value in (("user_id", str(uuid.uuid4())), ("environment", "test")):
        assert problem(api.call("PATCH", url, json={"name": "n", field: value}), 422)["field"] == field
    # expires_in_days works as at creation.
    days = api.call("PATCH", url, json={"expires_in_days": 30}).json()["expires_at"]
    ahead = datetime.fromisoformat(days.replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(days=29, hours=23) < ahead <= timedelta(days=30)
    assert problem(api.call("PATCH", url, json={"expires_in_days": 0}), 422)["field"] == "expires_in_days"
    problem(api.call("PATCH", url, json={"expires_in_days": 3, "expires_at": "2999-01-01T00:00:00Z"}), 422)
    # A name the body does not have (camelCase, a typo) is a 422 naming it, never ignored:
    # ignoring allowedIps would make a key usable from anywhere.
    assert problem(api.call("PATCH", url, json={"rateLimitPerMinute": 99}), 422)["field"] == "rateLimitPerMinute"
    assert api.call("GET", url).json()["rate_limit_per_minute"] == 5
    before = len(every(api, ADMIN + "/api-keys"))
    for field, value in (("allowedIps", ["10.0.0.0/8"]), ("allowed_ip", ["10.0.0.0/8"]), ("expiresInDays", 1)):
        r = api.call("POST", ADMIN + "/api-keys", json={"name": "strict", "scopes": ["self"], field: value})
        assert problem(r, 422)["field"] == field
    assert len(every(api, ADMIN + "/api-keys")) == before
    assert problem(api.call("POST", f"{ADMIN}/users", json={"email": "x@example.com", "planTier": "pro"}), 422)["field"] == "planTier"


def test_rotation_without_and_with_grace(api):
    old = api.create_key(scopes=["self"])
    r = api.call("POST", f"{ADMIN}/api-keys/{old['id']}/rotate", json={"grace_period_seconds": 0})
    assert r.status_code == 201
    new = r.json()
    CREATED_KEYS.append(new["key"])
    assert new["rotated_from"] == old["id"] and new["scopes"] == ["self"] and new["key"] != old["key"]
    problem(api.call("GET", "/api/v1/auth/key", key=old["key"]), 401)
    assert api.call("GET", "/api/v1/auth/key", key=new["key"]).status_code == 200

    graced = api.create_key(scopes=["self"])
    r = api.call("POST", f"{ADMIN}/api-keys/{graced['id']}/rotate", json={"grace_period_seconds": 2})
    successor = r.json()
    CREATED_KEYS.append(successor["key"])
    assert api.call("GET", "/api/v1/auth/key", key=graced["key"]).status_code == 200
    assert api.call("GET", "/api/v1/auth/key", key=successor["key"]).status_code == 200
    time.sleep(2.5)
    problem(api.call("GET", "/api/v1/auth/key", key=graced["key"]), 401)
    assert api.call("GET", "/api/v1/auth/key", key=successor["key"]).status_code == 200
    # After its grace the old key shows as expired (still active: it was not revoked).
    shown = api.call("GET", f"{ADMIN}/api-keys/{graced['id']}").json()
    assert shown["status"] == "expired" and shown["active"] is True and shown["revoked_at"] is None
    problem(api.call("POST", f"{ADMIN}/api-keys/{successor['id']}/rotate", json={"grace_period_seconds": 604801}), 422)
    problem(api.call("POST", f"{ADMIN}/api-keys/{graced['id']}/rotate", json={}), 409)  # expired keys do not rotate


def test_a_rotation_waiting_on_a_revocation_finds_the_key_revoked(api):
    # Rotations pass the route's check while the key is active, then wait for its row
    # lock, which a revocation holds. Once it commits they must see the key revoked (409),
    # not give a revoked key a live successor.
    from concurrent.futures import ThreadPoolExecutor
    from test_database import holding_key_row
    key = api.create_key(scopes=["self"])

    def rotate(_):
        return api.stack.session().post(api.stack.base + f"{ADMIN}/api-keys/{key['id']}/rotate",
                                        json={"grace_period_seconds": 3600}, headers={"X-API-Key": api.key}, timeout=10)

    with holding_key_row(key["id"], 1.5, then_sql=f"UPDATE api_keys SET active = false, revoked_at = now() WHERE id = '{key['id']}';"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(rotate, range(2)))
    CREATED_KEYS.extend(r.json()["key"] for r in results if r.status_code == 201)
    assert [r.status_code for r in results] == [409, 409], [r.text for r in results]
    items = every(api, ADMIN + "/api-keys")
    assert not [k for k in items if k["rotated_from"] == key["id"]]


def test_a_rotation_waiting_on_a_scope_edit_checks_the_new_scopes(api):
    # A keys:write key rotates a self key while an admin's edit, holding the row lock,
    # gives that key 'admin'. Under the lock the rotation must see the new scopes: a
    # successor with 'admin' would hand the caller a scope it does not hold.
    from test_database import holding_key_row
    writer = api.create_key(scopes=["keys:write", "self"])
    target = api.create_key(scopes=["self"])
    with holding_key_row(target["id"], 1.2, then_sql=f"UPDATE api_keys SET scopes = '{{self,admin}}' WHERE id = '{target['id']}';"):
        r = api.call("POST", f"{ADMIN}/api-keys/{target['id']}/rotate", key=writer["key"], json={"grace_period_seconds": 60})
    if r.status_code == 201:
        CREATED_KEYS.append(r.json()["key"])
    problem(r, 403)
    assert not [k for k in every(api, ADMIN + "/api-keys") if k["rotated_from"] == target["id"]]
    # (No key holding 'admin' is left behind by a test.)
    assert api.call("DELETE", f"{ADMIN}/api-keys/{target['id']}").status_code == 204


def test_an_edit_or_delete_waiting_on_a_scope_edit_checks_the_new_scopes(api):
    # As for rotation: a keys:write key restores (or deletes) a key while an admin's edit,
    # holding the row lock, gives that key 'admin'. Under the lock the change must be
    # refused: the caller would otherwise have restored an admin key it could not manage.
    from test_database import holding_key_row
    writer = api.create_key(scopes=["keys:write", "self"])
    for method, body in (("PATCH", {"active": True}), ("DELETE", None)):
        target = api.create_key(scopes=["self"])
        api.call("PATCH", f"{ADMIN}/api-keys/{target['id']}", json={"active": False})
        with holding_key_row(target["id"], 1.2, then_sql=f"UPDATE api_keys SET scopes = '{{self,admin}}' WHERE id = '{target['id']}';"):
            r = api.call(method, f"{ADMIN}/api-keys/{target['id']}", key=writer["key"], json=body)
        problem(r, 403)
        after = api.call("GET", f"{ADMIN}/api-keys/{target['id']}").json()
        assert after["active"] is False and after["scopes"] == ["self", "admin"], (method, after)
        # (No key holding 'admin' is left behind by a test.)
        assert api.call("DELETE", f"{ADMIN}/api-keys/{target['id']}").status_code == 204


def test_revoking_a_revoked_key_changes_and_audits_nothing(api):
    key = api.create_key(scopes=["self"])
    first = api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"active": False}).json()
    again = api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"active": False})
    assert again.status_code == 200 and again.json()["revoked_at"] == first["revoked_at"]
    actions = [e["action"] for e in every(api, ADMIN + "/audit-log")
               if e["target_id"] == key["id"]]
    assert actions == ["key.created", "key.revoked"], actions
    # With another change, only that one is audited as changed.
    api.call("PATCH", f"{ADMIN}/api-keys/{key['id']}", json={"active": False, "name": "renamed"})
    last = [e for e in every(api, ADMIN + "/audit-log") if e["target_id"] == key["id"]][-1]
    assert last["action"] == "key.updated" and last["details"]["changed"] == "name", last


def test_a_client_address_that_is_no_ip_is_audited_as_none_and_the_change_stands(api):
    # nginx behind a unix-socket listener passes REMOTE_ADDR "unix:": the audit row's inet
    # cast once refused the whole change (422), so no key could be revoked over HTTP.
    key = api.create_key(scopes=["self"])

    def patch(address, body):
        params = fcgi.base_params("PATCH", uri=f"{ADMIN}/api-keys/{key['id']}", HTTP_X_API_KEY=api.key,
                                  CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(body)))
        params = [(name, address if name == "REMOTE_ADDR" else value) for name, value in params]
        return fcgi.request(api.stack.socket, params, body=body)

    for number, address in enumerate(("unix:", "not an address", "10.0.0.0/8")):
        status, _, body = patch(address, b'{"name": "renamed-%d"}' % number)
        assert status == 200, (address, body)
    status, _, body = patch("unix:", b'{"active": false}')
    assert status == 200, body
    assert api.call("GET", f"{ADMIN}/api-keys/{key['id']}").json()["status"] == "revoked"
    entries = [e for e in every(api, ADMIN + "/audit-log") if e["target_id"] == key["id"]]
    assert [e["action"] for e in entries] == ["key.created"] + ["key.updated"] * 3 + ["key.revoked"]
    assert all(e["remote_addr"] is None for e in entries[1:]), entries


def test_key_audit_and_usage_routes_check_scope_and_target(api):
    key = api.create_key(scopes=["self"])
    for route, scope in (("audit", "audit:read"), ("usage", "usage:read")):
        problem(api.call("GET", f"{ADMIN}/api-keys/{uuid.uuid4()}/{route}"), 404)
        other = "usage:read" if scope == "audit:read" else "audit:read"
        reader = api.create_key(scopes=[other, "keys:read"])
        problem(api.call("GET", f"{ADMIN}/api-keys/{key['id']}/{route}", key=reader["key"]), 403)
        allowed = api.create_key(scopes=[scope])
        assert api.call("GET", f"{ADMIN}/api-keys/{key['id']}/{route}", key=allowed["key"]).status_code == 200


def test_api_routes_answer_405_and_413_as_problems(api):
    r = api.call("PUT", ADMIN + "/backfill/claim", json={})
    problem(r, 405)
    assert r.headers["Allow"] == "POST"
    # Over the app's 1 MiB body limit (under nginx's 2 MiB): nothing is made.
    before = len(every(api, ADMIN + "/api-keys"))
    r = api.call("POST", ADMIN + "/api-keys", data=b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
                 headers={"Content-Type": "application/json"})
    problem(r, 413)
    assert len(every(api, ADMIN + "/api-keys")) == before


def test_list_filters_return_what_they_name(api):
    user = api.call("POST", ADMIN + "/users", json={"email": f"f-{uuid.uuid4().hex[:8]}@example.com"}).json()
    mine = api.create_key(scopes=["self"], user_id=user["id"])
    revoked = api.create_key(scopes=["self"], user_id=user["id"])
    api.call("PATCH", f"{ADMIN}/api-keys/{revoked['id']}", json={"active": False})
    expiring = api.create_key(scopes=["self"], user_id=user["id"], expires_at=(datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat())
    time.sleep(1.2)
    listed = {k["id"]: k["status"] for k in every(api, ADMIN + "/api-keys", user_id=user["id"])}
    assert listed == {mine["id"]: "active", revoked["id"]: "revoked", expiring["id"]: "expired"}
    for status, wanted in (("active", mine), ("revoked", revoked), ("expired", expiring)):
        assert [k["id"] for k in every(api, ADMIN + "/api-keys", user_id=user["id"], status=status)] == [wanted["id"]]


def test_key_audit_and_usage_routes_answer(api):
    key = api.create_key(scopes=["self"], quota_daily=100)
    log = api.call("GET", f"{ADMIN}/api-keys/{key['id']}/audit").json()
    assert log == {"items": [], "next_cursor": None}  # never used yet
    usage = api.call("GET", f"{ADMIN}/api-keys/{key['id']}/usage").json()
    assert usage["key_id"] == key["id"] and usage["total"] == 0
    assert usage["quota"] == {"daily_used": 0, "daily_remaining": 100, "monthly_used": 0, "monthly_remaining": None}
    assert set(usage["latency_ms"]) == {"p50", "p95", "p99"}
    problem(api.call("GET", f"{ADMIN}/api-keys/{key['id']}/usage", params={"from": "yesterday"}), 400)
    own = api.call("GET", "/api/v1/auth/key", key=key["key"]).json()
    # This request itself counts against the quota (the usage tests cover the rest).
    assert own["quota"] == {"daily_used": 1, "daily_remaining": 99, "monthly_used": 1, "monthly_remaining": None}
    unlimited = api.create_key(scopes=["self"])
    assert api.call("GET", "/api/v1/auth/key", key=unlimited["key"]).json()["quota"] == {
        "daily_used": None, "daily_remaining": None, "monthly_used": None, "monthly_remaining": None}


# --- users ---

def test_users_routes(api):
    email = f"{uuid.uuid4().hex[:8]}@Example.com"
    created = api.call("POST", ADMIN + "/users", json={"email": email, "plan_tier": "pro", "external_id": "whop_" + uuid.uuid4().hex[:6]})
    assert created.status_code == 201
    user = created.json()
    assert set(user) == {"id", "email", "plan_tier", "external_id", "created_at", "updated_at"}
    problem(api.call("POST", ADMIN + "/users", json={"email": email.lower()}), 409)  # unique, case-insensitively
    problem(api.call("POST", ADMIN + "/users", json={"email": "not-an-email"}), 422)
    problem(api.call("POST", ADMIN + "/users", json={"email": "a@b.co", "plan_tier": "gold"}), 422)
    assert api.call("GET", f"{ADMIN}/users/{user['id']}").json() == user
    problem(api.call("GET", f"{ADMIN}/users/{uuid.uuid4()}"), 404)
    patched = api.call("PATCH", f"{ADMIN}/users/{user['id']}", json={"plan_tier": "enterprise", "external_id": None}).json()
    assert patched["plan_tier"] == "enterprise" and patched["external_id"] is None
    assert api.call("PUT", f"{ADMIN}/users/{user['id']}", json={"email": "new-" + email}).json()["email"] == "new-" + email
    assert any(u["id"] == user["id"] for u in every(api, ADMIN + "/users"))
    actions = [e["action"] for e in every(api, ADMIN + "/audit-log") if e["target_id"] == user["id"]]
    assert actions == ["user.created", "user.updated", "user.updated"]
    # Another user's address, in any case, is taken: 409, and neither user changes.
    other = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"}).json()
    problem(api.call("PATCH", f"{ADMIN}/users/{other['id']}", json={"email": ("new-" + email).upper()}), 409)
    assert api.call("GET", f"{ADMIN}/users/{other['id']}").json() == other
    assert [e["action"] for e in every(api, ADMIN + "/audit-log") if e["target_id"] == other["id"]] == ["user.created"]
    # Lengths in characters, as the database's CHECKs count them (255 CJK = 765 bytes).
    wide = api.call("POST", ADMIN + "/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "external_id": "漢" * 255})
    assert wide.status_code == 201 and wide.json()["external_id"] == "漢" * 255
    problem(api.call("POST", ADMIN + "/users", json={"email": "a@b.co", "external_id": "漢" * 256}), 422)


# --- self-service ---

def test_self_service_manages_only_the_callers_users_keys(api):
    alice = api.call("POST", ADMIN + "/users", json={"email": f"alice-{uuid.uuid4().hex[:6]}@example.com"}).json()
    bob = api.call("POST", ADMIN + "/users", json={"email": f"bob-{uuid.uuid4().hex[:6]}@example.com"}).json()
    a = api.create_key(scopes=["self", "keys:read"], user_id=alice["id"])
    b = api.create_key(scopes=["self"], user_id=bob["id"])
    own = api.call("GET", "/api/v1/auth/key", key=a["key"]).json()
    assert own["id"] == a["id"] and "quota" in own and "key" not in own
    r = api.call("POST", "/api/v1/auth/keys", key=a["key"], json={"name": "laptop", "scopes": ["self"]})
    assert r.status_code == 201
    second = r.json()
    CREATED_KEYS.append(second["key"])
    assert second["user_id"] == alice["id"]
    problem(api.call("POST", "/api/v1/auth/keys", key=a["key"], json={"name": "x", "user_id": bob["id"]}), 403)
    listed = {k["id"] for k in api.call("GET", "/api/v1/auth/keys", key=a["key"]).json()["items"]}
    assert listed == {a["id"], second["id"]}
    problem(api.call("DELETE", f"/api/v1/auth/keys/{b['id']}", key=a["key"]), 404)  # not alice's
    problem(api.call("POST", f"/api/v1/auth/keys/{b['id']}/rotate", key=a["key"], json={}), 404)
    r = api.call("POST", f"/api/v1/auth/keys/{second['id']}/rotate", key=a["key"], json={})
    assert r.status_code == 201
    CREATED_KEYS.append(r.json()["key"])
    assert api.call("DELETE", f"/api/v1/auth/keys/{r.json()['id']}", key=a["key"]).status_code == 204
    problem(api.call("GET", "/api/v1/auth/key", key=r.json()["key"]), 401)
    assert api.call("GET", "/api/v1/auth/key", key=b["key"]).status_code == 200
    problem(api.call("GET", "/api/v1/auth/key", key=api.create_key(scopes=["keys:read"])["key"]), 403)  # no 'self'


def test_self_service_keys_get_no_more_than_the_key_making_them(api):
    user = api.call("POST", ADMIN + "/users", json={"email": f"carol-{uuid.uuid4().hex[:6]}@example.com"}).json()  # free plan
    maker = api.create_key(scopes=["self"], user_id=user["id"], rate_limit_per_minute=30, burst=100, allowed_ips=["127.0.0.0/8"],
                           allowed_paths=["/api/v1/auth"], expires_in_days=7)

    def make(**body):
        return api.call("POST", "/api/v1/auth/keys", key=maker["key"], json={"name": "made", "scopes": ["self"], **body})

    def count():
        return len(api.call("GET", "/api/v1/auth/keys", key=maker["key"], params={"limit": 500}).json()["items"])

    # Left out: the maker's own limit, the free plan's others, the maker's restrictions and expiry.
    r = make()
    assert r.status_code == 201, r.text
    made = r.json()
    CREATED_KEYS.append(made["key"])
    assert (made["rate_limit_per_minute"], made["rate_limit_per_hour"], made["burst"], made["quota_daily"]) == (30, 1000, 10, 10000)
    assert made["allowed_ips"] == ["127.0.0.0/8"] and made["allowed_paths"] == ["/api/v1/auth"]
    assert made["expires_at"] == maker["expires_at"]
    # Tighter is allowed.
    r = make(rate_limit_per_minute=5, allowed_ips=["127.0.0.1"], allowed_paths=["/api/v1/auth/key"], expires_in_days=1)
    assert r.status_code == 201, r.text
    CREATED_KEYS.append(r.json()["key"])
    assert api.call("GET", "/api/v1/auth/key", key=r.json()["key"]).status_code == 200
    # Looser is a 403 naming the field, and makes no key.
    before = count()
    for body, field in [({"rate_limit_per_minute": 31}, "rate_limit_per_minute"), ({"quota_daily": 10001}, "quota_daily"),
                        ({"allowed_ips": ["127.0.0.1", "0.0.0.0/0"]}, "allowed_ips[1]"),
                        ({"allowed_paths": ["/api/v1/admin"]}, "allowed_paths[0]"), ({"expires_in_days": 30}, "expires_in_days")]:
        assert problem(make(**body), 403)["field"] == field
    assert count() == before
    # The admin route sets what the operator asks for, plan or not.
    sibling = api.create_key(scopes=["self"], user_id=user["id"], rate_limit_per_minute=1000, burst=100)
    assert sibling["rate_limit_per_minute"] == 1000
    # Rotating hands over a key with the target's attributes: not a looser sibling's...
    problem(api.call("POST", f"/api/v1/auth/keys/{sibling['id']}/rotate", key=maker["key"], json={}), 403)
    # ...but the maker's own, or a key no looser than it (the sibling may rotate the maker).
    r = api.call("POST", f"/api/v1/auth/keys/{made['id']}/rotate", key=maker["key"], json={"grace_period_seconds": 60})
    assert r.status_code == 201, r.text
    CREATED_KEYS.append(r.json()["key"])
    r = api.call("POST", f"/api/v1/auth/keys/{maker['id']}/rotate", key=sibling["key"], json={"grace_period_seconds": 60})
    assert r.status_code == 201, r.text
    CREATED_KEYS.append(r.json()["key"])
    # A test key makes test keys (left out: its own environment), and cannot rotate a live one.
    tester = api.create_key(scopes=["self"], user_id=user["id"], environment="test")
    r = api.call("POST", "/api/v1/auth/keys", key=tester["key"], json={"name": "t", "scopes": ["self"]})
    assert r.status_code == 201 and r.json()["environment"] == "test" and r.json()["key"].startswith("mdw_test_"), r.text
    CREATED_KEYS.append(r.json()["key"])
    asked_live = api.call("POST", "/api/v1/auth/keys", key=tester["key"], json={"name": "t", "scopes": ["self"], "environment": "live"})
    assert problem(asked_live, 403)["field"] == "environment"
    # Twins with the plan's limits, like the tester's: only the environment differs.
    live_twin = api.create_key(scopes=["self"], user_id=user["id"])
    test_twin = api.create_key(scopes=["self"], user_id=user["id"], environment="test")
    problem(api.call("POST", f"/api/v1/auth/keys/{live_twin['id']}/rotate", key=tester["key"], json={}), 403)
    r = api.call("POST", f"/api/v1/auth/keys/{test_twin['id']}/rotate", key=tester["key"], json={"grace_period_seconds": 60})
    assert r.status_code == 201, r.text
    CREATED_KEYS.append(r.json()["key"])
    made_by_live = api.call("POST", "/api/v1/auth/keys", key=sibling["key"], json={"name": "t", "scopes": ["self"], "environment": "test"})
    assert made_by_live.status_code == 201 and made_by_live.json()["environment"] == "test"
    CREATED_KEYS.append(made_by_live.json()["key"])


def test_allowed_ips_are_checked_as_postgresql_stores_them(api):
    # Host bits beyond the prefix: cidr refuses them, so validation names the field first.
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "x", "allowed_ips": ["10.0.0.0/8", "10.0.0.1/8"]}), 422)["field"] == "allowed_ips[1]"
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "x", "allowed_ips": ["10.0.0.0/+8"]}), 422)["field"] == "allowed_ips[0]"
    # A v4-mapped address is stored as an IPv6 cidr (::ffff:127.0.0.1/128) and still
    # matches the IPv4 address nginx passes.
    mapped = api.create_key(scopes=["self"], allowed_ips=["::ffff:127.0.0.1"])
    assert api.call("GET", "/api/v1/auth/key", key=mapped["key"]).status_code == 200
    block = api.create_key(scopes=["self"], allowed_ips=["::ffff:127.0.0.0/104"])  # 127.0.0.0/8, mapped
    assert api.call("GET", "/api/v1/auth/key", key=block["key"]).status_code == 200
    elsewhere = api.create_key(scopes=["self"], allowed_ips=["::ffff:10.0.0.0/104"])
    problem(api.call("GET", "/api/v1/auth/key", key=elsewhere["key"]), 403)


def test_names_are_counted_as_the_database_counts_them(api):
    # 150 "e" + combining acute: 150 characters to Swift, 300 code points to char_length.
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "e\u0301" * 150}), 422)["field"] == "name"
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "a\u0000b"}), 422)["field"] == "name"
    assert api.create_key(name="é" * 200)["name"] == "é" * 200
    # Paths too: 512 characters (here 601 bytes) as the document says.
    assert api.create_key(allowed_paths=["/" + "é" * 511])["allowed_paths"] == ["/" + "é" * 511]
    assert problem(api.call("POST", ADMIN + "/api-keys", json={"name": "p", "allowed_paths": ["/" + "é" * 512]}), 422)["field"] == "allowed_paths[0]"


# --- secrets and bootstrap ---

def test_bootstrap_twice_makes_one_admin_key(stack):
    def admins():
        out = subprocess.run(["psql", "-X", "-At", "-h", os.environ["KG_PG_SOCKET"], "-p", os.environ["KG_PG_PORT"], "-U", "postgres",
                              "-d", "keygate", "-c", "SELECT count(*) FROM api_keys WHERE 'admin' = ANY(scopes)"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout)
    before = admins()
    assert before >= 1  # the stack's own bootstrap made one (other tests may hold more)
    again = subprocess.run([stack.bin, "bootstrap", "--config", stack.config], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "" and "already exists" in again.stderr
    assert admins() == before
    forced = subprocess.run([stack.bin, "bootstrap", "--config", stack.config, "--force"], capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0 and forced.stdout.strip().startswith("mdw_live_")
    CREATED_KEYS.append(forced.stdout.strip())
    assert admins() == before + 1
    # A key file that cannot be written still leaves the (committed) key shown, and no
    # temporary file behind.
    unwritable = os.path.join(stack.run, "no-such-dir", "admin.key")
    lost = subprocess.run([stack.bin, "bootstrap", "--config", stack.config, "--force", "--key-file", unwritable],
                          capture_output=True, text=True, timeout=60)
    assert lost.returncode != 0 and "the key above is active" in lost.stderr, lost.stderr
    assert lost.stdout.strip().startswith("mdw_live_")
    CREATED_KEYS.append(lost.stdout.strip())
    assert admins() == before + 2


def test_bootstraps_at_once_on_an_empty_database_make_one_admin_key_and_audit_the_seeds(stack):
    # Two hosts deployed together: several bootstraps race on a database with no admin.
    from concurrent.futures import ThreadPoolExecutor
    from test_database import psql
    db = "kg_bootstrap_race"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", db="postgres")
    psql(f"CREATE DATABASE {db} OWNER keygate", db="postgres")
    try:
        config = os.path.join(stack.run, "bootstrap-race.conf")
        with open(config, "w") as out:
            for key, value in stack.settings().items():
                if key in ("database_url", "database_direct_url"):
                    value = value.replace("dbname=keygate", f"dbname={db}")
                out.write(f"{key} = {value}\n")

        def bootstrap(_):
            return subprocess.run([stack.bin, "bootstrap", "--config", config], capture_output=True, text=True, timeout=60)

        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = list(pool.map(bootstrap, range(4)))
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        printed = [r.stdout.strip() for r in runs if r.stdout.strip()]
        CREATED_KEYS.extend(printed)
        assert len(printed) == 1 and printed[0].startswith("mdw_live_")
        assert psql("SELECT count(*) FROM api_keys WHERE 'admin' = ANY(scopes)", db=db).stdout.strip() == "1"
        # Every seeded symbol has its audit row (by the operator on the host: no actor key).
        seeded = psql("SELECT count(*) FROM tracked_symbols", db=db).stdout.strip()
        audited = psql("SELECT count(*) FROM audit_log WHERE action = 'symbol.added' AND actor_key_id IS NULL "
                       "AND details->>'source' = 'bootstrap seed'", db=db).stdout.strip()
        assert int(seeded) > 0 and audited == seeded
    finally:
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", db="postgres")
