"""The operator CLI against the test database: tables by default, --json for scripts,
non-zero exits with a clear message on error."""
import json
import os
import subprocess
import uuid

from test_keys import CREATED_KEYS


def cli(stack, *args):
    return subprocess.run([stack.bin, *args, "--config", stack.config], capture_output=True, text=True, timeout=60)


def test_keys_lifecycle_through_the_cli(stack, client):
    name = "cli-" + uuid.uuid4().hex[:8]
    created = cli(stack, "keys", "create", "--name", name, "--scope", "self", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    CREATED_KEYS.append(key["key"])
    assert key["name"] == name and key["key"].startswith("mdw_live_") and key["scopes"] == ["self"]
    headers = {"X-API-Key": key["key"]}
    assert client.get(stack.base + "/api/v1/auth/key", headers=headers).status_code == 200

    table = cli(stack, "keys", "list")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "PREFIX"]
    assert key["id"] in table.stdout and key["key"] not in table.stdout

    assert cli(stack, "keys", "revoke", key["id"]).returncode == 0
    assert client.get(stack.base + "/api/v1/auth/key", headers=headers).status_code == 401
    assert json.loads(cli(stack, "keys", "restore", key["id"], "--json").stdout)["status"] == "active"
    rotated = json.loads(cli(stack, "keys", "rotate", key["id"], "--json").stdout)
    CREATED_KEYS.append(rotated["key"])
    assert rotated["rotated_from"] == key["id"]
    assert client.get(stack.base + "/api/v1/auth/key", headers={"X-API-Key": rotated["key"]}).status_code == 200
    deleted = cli(stack, "keys", "delete", rotated["id"], "--json")
    assert deleted.returncode == 0 and json.loads(deleted.stdout)["id"] == rotated["id"] and "key" not in json.loads(deleted.stdout)
    assert client.get(stack.base + "/api/v1/auth/key", headers={"X-API-Key": rotated["key"]}).status_code == 401

    missing = cli(stack, "keys", "show", str(uuid.uuid4()))
    assert missing.returncode != 0 and "No such API key" in missing.stderr
    bad = cli(stack, "keys", "create", "--name", "x", "--scope", "root")
    assert bad.returncode != 0 and "scopes[0]" in bad.stderr
    # A configuration that cannot be read is a failure with its reason, not a usage error.
    unreadable = subprocess.run([stack.bin, "keys", "list", "--config", "/nonexistent.conf"], capture_output=True, text=True, timeout=60)
    assert unreadable.returncode == 1 and "cannot be read" in unreadable.stderr and "USAGE" not in unreadable.stderr
    filtered = cli(stack, "keys", "list", "--user-id", "not-a-uuid")
    assert filtered.returncode != 0 and "user_id must be a UUID" in filtered.stderr, filtered.stderr


def test_revoke_restore_and_delete_need_no_pepper(stack):
    # An operator who cannot read the pepper (0600, the service's user) can still stop a key;
    # and a delete that committed is not reported as a failure.
    key = json.loads(cli(stack, "keys", "create", "--name", "no-pepper", "--scope", "self", "--json").stdout)
    CREATED_KEYS.append(key["key"])
    env = dict(os.environ, KEYGATE_PEPPER_FILE="/nonexistent/pepper")
    for action in ("revoke", "restore", "delete"):
        run = subprocess.run([stack.bin, "keys", action, key["id"], "--config", stack.config],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (action, run.stderr)
    assert cli(stack, "keys", "show", key["id"]).returncode != 0
    # Making a key does need it, and says so.
    refused = subprocess.run([stack.bin, "keys", "create", "--name", "x", "--scope", "self", "--config", stack.config],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "pepper" in refused.stderr


def test_cli_lists_page_to_the_end(stack):
    keys = [json.loads(cli(stack, "keys", "create", "--name", "page", "--scope", "self", "--json").stdout) for _ in range(3)]
    CREATED_KEYS.extend(k["key"] for k in keys)
    made = {k["id"] for k in keys}
    seen, cursor, pages = [], None, 0
    while True:
        page = json.loads(cli(stack, "keys", "list", "--limit", "2", "--json", *(["--cursor", cursor] if cursor else [])).stdout)
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen)) and pages >= 2
    for _ in range(2):
        assert cli(stack, "users", "create", "--email", f"page-{uuid.uuid4().hex[:8]}@example.com").returncode == 0
    table = cli(stack, "users", "list", "--limit", "1")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 2 and "more: add --cursor " in table.stderr
    last = cli(stack, "users", "list", "--limit", "500")
    assert last.returncode == 0 and "more:" not in last.stderr
    assert cli(stack, "keys", "list", "--cursor", "garbage").returncode != 0


def test_users_through_the_cli(stack):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    user = json.loads(cli(stack, "users", "create", "--email", email, "--plan-tier", "pro", "--json").stdout)
    assert user["email"] == email and user["plan_tier"] == "pro"
    updated = json.loads(cli(stack, "users", "update", user["id"], "--plan-tier", "enterprise", "--json").stdout)
    assert updated["plan_tier"] == "enterprise"
    assert email in cli(stack, "users", "list").stdout
    duplicate = cli(stack, "users", "create", "--email", email)
    assert duplicate.returncode != 0 and "409" in duplicate.stderr
