"""PostgreSQL behind the pool: readiness, outages, migrations through the CLI, and the
schema's own guarantees. The pool reaches the database through PgBouncer."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest


def pg_env(name):
    value = os.environ.get(name)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not set: run through scripts/test", pytrace=False)
        pytest.skip(f"{name} not set")
    return value


def psql(sql, db="keygate", user="postgres", check=True):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", pg_env("KG_PG_SOCKET"),
                          "-p", pg_env("KG_PG_PORT"), "-U", user, "-d", db, "-c", sql],
                         capture_output=True, text=True, timeout=30)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@contextlib.contextmanager
def holding_key_row(key_id, seconds, then_sql=""):
    """Another session holds the api_keys row of `key_id` FOR UPDATE for `seconds`, then
    runs `then_sql` (as a concurrent edit would) and commits. Yields once the lock is held."""
    tag = f"key-row-lock-{uuid.uuid4().hex}"
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-h", pg_env("KG_PG_SOCKET"), "-p", pg_env("KG_PG_PORT"), "-U", "postgres", "-d", "keygate", "-c",
         f"BEGIN; SELECT 1 FROM api_keys WHERE id = '{key_id}' FOR UPDATE; SELECT pg_sleep({seconds}) AS \"{tag}\"; {then_sql} COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while psql(f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{tag}%' AND wait_event = 'PgSleep'").stdout.strip() != "1":
            assert time.monotonic() < deadline, "the row lock was never taken"
            time.sleep(0.02)
        yield
    finally:
        holder.wait(timeout=seconds + 10)


def pg_ctl(*args):
    command = ["pg_ctl", "-D", pg_env("KG_PG_DATA"), "-w", "-t", "30", *args]
    if os.getuid() == 0:
        command = ["runuser", "-u", pg_env("KG_PG_RUN_AS"), "--"] + command
    env = dict(os.environ, PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"])
    subprocess.run(command, check=True, capture_output=True, timeout=60, env=env)


@contextlib.contextmanager
def hot_standby():
    """A streaming replica of the test cluster on a socket of its own: in recovery, it
    answers reads and refuses writes and LISTEN (25006), as a demoted primary does after a
    failover. Yields its connection string for the keygate role."""
    user = pg_env("KG_PG_RUN_AS")
    as_pg = ["runuser", "-u", user, "--"] if os.getuid() == 0 else []
    env = dict(os.environ, PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"])
    base = tempfile.mkdtemp(prefix="kg-standby-")
    shutil.chown(base, user)
    data = os.path.join(base, "data")
    with socket.socket() as probe:  # a free port (the cluster listens on the socket only)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(as_pg + ["pg_basebackup", "-D", data, "-h", pg_env("KG_PG_SOCKET"), "-p", pg_env("KG_PG_PORT"),
                            "-U", "postgres", "-R", "-X", "stream", "-c", "fast"],
                   check=True, capture_output=True, timeout=120, env=env)
    pg_ctl_standby = as_pg + ["pg_ctl", "-D", data, "-w", "-t", "30"]
    subprocess.run(pg_ctl_standby + ["-l", os.path.join(base, "server.log"),
                                     "-o", f"-p {port} -k {base} -c listen_addresses=''", "start"],
                   check=True, capture_output=True, timeout=60, env=env)
    try:
        yield f"host={base} port={port} dbname=keygate user=keygate connect_timeout=3"
    finally:
        subprocess.run(pg_ctl_standby + ["-m", "immediate", "stop"], capture_output=True, timeout=60, env=env)
        shutil.rmtree(base, ignore_errors=True)


def migrations_count():
    return len([f for f in os.listdir(pg_env("KG_MIGRATIONS")) if f.endswith(".sql")])


def test_readyz_reports_current_schema(stack, client):
    r = client.get(stack.base + "/readyz")
    assert r.status_code == 200, r.text
    latest = max(int(f[:4]) for f in os.listdir(pg_env("KG_MIGRATIONS")) if f.endswith(".sql"))
    assert r.json() == {"status": "ready", "schema_version": latest}


def test_postgres_restart_readyz_503_then_recovers_without_restarting_keygate(stack, client):
    master = stack.status()["master_pid"]
    crashes = stack.status()["restarts"]["crash"]
    assert client.get(stack.base + "/readyz").status_code == 200
    pg_ctl("-m", "fast", "stop")
    try:
        r = client.get(stack.base + "/readyz", timeout=30)
        assert r.status_code == 503, r.text
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert int(r.headers["Retry-After"]) > 0
        assert client.get(stack.base + "/healthz").status_code == 200  # the process itself is fine
    finally:
        pg_ctl("-o", f"-p {pg_env('KG_PG_PORT')} -k {pg_env('KG_PG_SOCKET')} -c listen_addresses=127.0.0.1",
               "-l", os.path.join(pg_env("KG_PG_DATA"), "server.log"), "start")
    deadline = time.monotonic() + 30
    while client.get(stack.base + "/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "keygate did not recover after PostgreSQL came back"
        time.sleep(0.2)
    # Every worker answers from the database again: no failed request after recovery.
    codes = [client.get(stack.base + "/readyz", timeout=30).status_code for _ in range(40)]
    assert codes == [200] * 40
    assert stack.status()["master_pid"] == master
    assert stack.status()["restarts"]["crash"] == crashes
    # The housekeeper listens again: a change made straight in the database (as another
    # host's is) still drops this host's cached entry at once, not at the TTL (60 s).
    from test_keys import CREATED_KEYS
    made = subprocess.run([stack.bin, "keys", "create", "--name", "after-restart", "--scope", "self", "--json", "--config", stack.config],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    CREATED_KEYS.append(key["key"])
    headers = {"X-API-Key": key["key"]}
    assert client.get(stack.base + "/api/v1/auth/key", headers=headers).status_code == 200  # cached now
    psql(f"UPDATE api_keys SET active = false, revoked_at = now() WHERE id = '{key['id']}'")
    deadline = time.monotonic() + 2
    while client.get(stack.base + "/api/v1/auth/key", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "a change made after the restart did not reach the cache"
        time.sleep(0.02)


@pytest.fixture()
def fresh_database(stack):
    name = "keygate_cli_" + uuid.uuid4().hex[:10]
    psql(f'CREATE DATABASE "{name}" OWNER keygate', db="postgres")
    directory = tempfile.mkdtemp(prefix="keygate-migrate-")
    config = os.path.join(directory, "keygate.conf")
    migrations = os.path.join(directory, "migrations")
    shutil.copytree(pg_env("KG_MIGRATIONS"), migrations)
    url = f"host={pg_env('KG_PG_SOCKET')} port={pg_env('KG_PG_PORT')} dbname={name} user=keygate"
    with open(config, "w") as f:
        f.write(f"database_url = {url}\nmigrations_dir = {migrations}\n")
    yield {"config": config, "migrations": migrations, "name": name}
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', db="postgres")
    shutil.rmtree(directory)


def migrate(stack, config, *args):
    return subprocess.run([stack.bin, "migrate", *args, "--config", config], capture_output=True, text=True, timeout=120)


def test_migrate_status_up_down_via_cli(stack, fresh_database):
    config = fresh_database["config"]
    status = migrate(stack, config, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert len(rows) == migrations_count() and all(r["state"] == "pending" for r in rows)

    up = migrate(stack, config, "up")
    assert up.returncode == 0, up.stderr
    assert up.stdout.count("applied ") == migrations_count()
    table = migrate(stack, config, "status")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["VERSION", "NAME", "STATE", "APPLIED", "AT"]
    assert all(" applied " in line for line in table.stdout.splitlines()[1:])

    down = migrate(stack, config, "down")
    assert down.returncode == 0 and down.stdout.startswith("rolled back ")
    assert json.loads(migrate(stack, config, "status", "--json").stdout)[-1]["state"] == "pending"
    assert migrate(stack, config, "down", "--to", "0").returncode == 0
    assert psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'",
                db=fresh_database["name"]).stdout.strip() == "0"
    assert migrate(stack, config, "up").returncode == 0


def test_edited_applied_migration_is_refused(stack, fresh_database):
    config = fresh_database["config"]
    assert migrate(stack, config, "up").returncode == 0
    first = sorted(os.listdir(fresh_database["migrations"]))[0]
    with open(os.path.join(fresh_database["migrations"], first), "a") as f:
        f.write("\n-- an innocent-looking edit\n")
    up = migrate(stack, config, "up")
    assert up.returncode != 0
    assert "was edited after it was applied" in up.stderr
    status = migrate(stack, config, "status")
    assert status.returncode == 4
    assert "modified" in status.stdout


def test_concurrent_migrate_up_runs_do_not_conflict(stack, fresh_database):
    config = fresh_database["config"]
    results = []
    threads = [threading.Thread(target=lambda: results.append(migrate(stack, config, "up"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    applied = sum(r.stdout.count("applied ") for r in results)
    assert applied == migrations_count()
    counts = psql("SELECT count(*), count(DISTINCT version) FROM schema_migrations", db=fresh_database["name"]).stdout.strip()
    assert counts == f"{migrations_count()}|{migrations_count()}"


def test_audit_log_is_append_only(stack):
    psql("INSERT INTO audit_log (action, target_type, target_id) VALUES ('key.created', 'api_key', 'x')", user="keygate")
    for sql in ("UPDATE audit_log SET action = 'key.deleted'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        out = psql(sql, user="keygate", check=False)
        assert out.returncode != 0
        assert "append-only" in out.stderr
    assert int(psql("SELECT count(*) FROM audit_log WHERE action = 'key.created'").stdout) >= 1
