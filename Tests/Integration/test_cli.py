"""The operator CLI against the test database: tables by default, --json for scripts,
non-zero exits with a clear message on error."""
import json
import subprocess
import uuid


def cli(stack, *args):
    return subprocess.run([stack.bin, *args, "--config", stack.config], capture_output=True, text=True, timeout=60)


def test_keys_lifecycle_through_the_cli(stack, client):
    name = "cli-" + uuid.uuid4().hex[:8]
    created = cli(stack, "keys", "create", "--name", name, "--scope", "self", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
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
    assert rotated["rotated_from"] == key["id"]
    assert client.get(stack.base + "/api/v1/auth/key", headers={"X-API-Key": rotated["key"]}).status_code == 200
    assert cli(stack, "keys", "delete", rotated["id"]).returncode == 0
    assert client.get(stack.base + "/api/v1/auth/key", headers={"X-API-Key": rotated["key"]}).status_code == 401

    missing = cli(stack, "keys", "show", str(uuid.uuid4()))
    assert missing.returncode != 0 and "No such API key" in missing.stderr
    bad = cli(stack, "keys", "create", "--name", "x", "--scope", "root")
    assert bad.returncode != 0 and "scopes[0]" in bad.stderr


def test_users_through_the_cli(stack):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    user = json.loads(cli(stack, "users", "create", "--email", email, "--plan-tier", "pro", "--json").stdout)
    assert user["email"] == email and user["plan_tier"] == "pro"
    updated = json.loads(cli(stack, "users", "update", user["id"], "--plan-tier", "enterprise", "--json").stdout)
    assert updated["plan_tier"] == "enterprise"
    assert email in cli(stack, "users", "list").stdout
    duplicate = cli(stack, "users", "create", "--email", email)
    assert duplicate.returncode != 0 and "409" in duplicate.stderr
