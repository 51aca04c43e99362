"""Runs last (the file sorts last): no raw key in the database or in any log the whole
run wrote, whether a test registered the key or not."""
import glob
import os
import re
import subprocess

from test_keys import CREATED_KEYS

# A whole key: prefix and environment, then at least 38 base62 characters (a body of 32 or
# more and a 6-character checksum). The display prefix the database keeps is 12 characters
# in all, so it never matches.
KEY_SHAPE = re.compile(rb"mdw_(?:live|test)_[0-9A-Za-z]{38,}")


def test_no_raw_key_in_the_database_or_any_log(stack):
    assert len(CREATED_KEYS) > 20
    dump = subprocess.run(["pg_dump", "-h", os.environ["KG_PG_SOCKET"], "-p", os.environ["KG_PG_PORT"], "-U", "postgres", "keygate"],
                          capture_output=True, check=True, timeout=120).stdout
    assert b"api_keys" in dump and b"audit_log" in dump
    logs = [p for p in glob.glob(os.path.join(stack.run, "**", "*.log"), recursive=True) if os.path.isfile(p)]
    # The main pool's, the aux pools' (one file each), nginx's, PostgreSQL's, PgBouncer's.
    assert any(p.endswith("/keygate.log") for p in logs) and any("nginx" in p for p in logs)
    assert len([p for p in logs if "/aux/keygate-" in p]) >= 5, logs
    assert any("pg" in p and p.endswith("server.log") for p in logs) and any("pgbouncer" in p for p in logs), logs
    haystacks = {"pg_dump": dump} | {p: open(p, "rb").read() for p in logs}
    for name, data in haystacks.items():
        found = KEY_SHAPE.search(data)
        assert not found, f"a key-shaped string appears in {name} at byte {found.start()}"
    for key in CREATED_KEYS:
        body = key.encode()[9:]  # without the public mdw_live_ prefix
        for name, data in haystacks.items():
            assert body not in data, f"a raw key appears in {name}"
