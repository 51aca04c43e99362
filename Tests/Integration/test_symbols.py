"""Tracked symbols and backfill claims over HTTPS, against the real database."""
import json
import os
import random
import string
import subprocess
import threading
import uuid

import pytest

import fcgi

from test_keys import ADMIN, Api, every, problem

SYMBOLS = ADMIN + "/symbols"
CLAIM = ADMIN + "/backfill/claim"


@pytest.fixture()
def api(stack):
    with open(os.environ["KG_ADMIN_KEY_FILE"]) as f:
        return Api(stack, f.read().strip())


def psql(sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", os.environ["KG_PG_SOCKET"], "-p", os.environ["KG_PG_PORT"],
                          "-U", "postgres", "-d", "keygate", "-c", sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def ticker():
    """A fresh valid stock ticker (letters only, 5-6 characters)."""
    return "".join(random.choice(string.ascii_uppercase) for _ in range(6))


def add(api, symbol, asset_class="stock", expect=201):
    r = api.call("POST", SYMBOLS, json={"symbol": symbol, "asset_class": asset_class})
    assert r.status_code == expect, r.text
    return r.json()


def test_the_seeds_curl_example_answers_as_they_show(api):
    r = api.call("POST", SYMBOLS, data=b'{"symbol": "BTC", "asset_class": "crypto"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body["id"], int)
    assert body["symbol"] == "BTC" and body["asset_class"] == "crypto" and body["active"] is True
    assert body["date_added"].endswith("Z") and body["backfill_status"] == "pending"
    assert set(body) == {"id", "symbol", "asset_class", "active", "date_added", "last_backfill", "backfill_status", "backfill_error"}
    problem(api.call("POST", SYMBOLS, json={"symbol": "btc", "asset_class": "crypto"}), 409)


@pytest.mark.parametrize("raw,asset_class,canonical", [
    ("x:dotusd", "crypto", "DOT-USD"), ("avax/usdt", "crypto", "AVAX-USDT"), ("LINKUSD", "crypto", "LINK-USD"),
    ("bf-b", "stock", "BF.B"), ("vti", "etf", "VTI"),
])
def test_symbols_are_stored_canonical_and_found_case_insensitively(api, raw, asset_class, canonical):
    existing = api.call("GET", f"{SYMBOLS}/{canonical}")
    body = existing.json() if existing.status_code == 200 else add(api, raw, asset_class)
    assert body["symbol"] == canonical
    for spelling in (canonical.lower(), raw):
        path = spelling.replace("/", "%2F")
        r = api.call("GET", f"{SYMBOLS}/{path}")
        assert r.status_code == 200 and r.json()["id"] == body["id"], (spelling, r.text)


@pytest.mark.parametrize("body,status,field", [
    (b'{"symbol": "AAPL"}', 422, "asset_class"),
    (b'{"asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": "AAPL", "asset_class": "bond"}', 422, "asset_class"),
    (b'{"symbol": "", "asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": "TOOLONGTICKER", "asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": "BTC-USD", "asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": 42, "asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": "X:", "asset_class": "crypto"}', 422, "symbol"),
    (b'{"symbol": "\\u0000AAPL", "asset_class": "stock"}', 422, "symbol"),
    (b'{"symbol": "AAPL", "asset_class": "stock"', 400, None),
    (b'"AAPL"', 400, None),
])
def test_bad_symbol_bodies_are_4xx_naming_the_field(api, body, status, field):
    payload = problem(api.call("POST", SYMBOLS, data=body, headers={"Content-Type": "application/json"}), status)
    if field:
        assert payload["field"] == field


def test_scopes_protect_the_symbol_routes(api):
    reader = api.create_key(scopes=["symbols:read"])
    assert api.call("GET", SYMBOLS, key=reader["key"]).status_code == 200
    problem(api.call("POST", SYMBOLS, key=reader["key"], json={"symbol": "AAPL", "asset_class": "stock"}), 403)
    problem(api.call("POST", CLAIM, key=reader["key"], json={}), 403)
    problem(api.call("GET", SYMBOLS, key=""), 401)


def test_list_filters(api):
    problem(api.call("GET", SYMBOLS, params={"active": "maybe"}), 400)
    problem(api.call("GET", SYMBOLS, params={"asset_class": "bond"}), 400)
    problem(api.call("GET", SYMBOLS, params={"backfill_status": "done"}), 400)
    crypto = every(api, SYMBOLS, asset_class="crypto")
    assert every(api, SYMBOLS, asset_class="CRYPTO") == crypto  # as in bodies
    assert crypto and all(s["asset_class"] == "crypto" and s["active"] for s in crypto)
    gone = add(api, ticker())
    api.call("DELETE", f"{SYMBOLS}/{gone['symbol']}")
    default = {s["symbol"] for s in every(api, SYMBOLS)}
    removed = {s["symbol"] for s in every(api, SYMBOLS, active="false")}
    everything = {s["symbol"] for s in every(api, SYMBOLS, active="all")}
    assert gone["symbol"] not in default and gone["symbol"] in removed and default | removed == everything


def test_updates_transitions_and_backfill_history(api):
    symbol = add(api, ticker()[:4] + ".a")["symbol"]  # a share class: never a crypto symbol
    assert symbol.endswith(".A")
    problem(api.call("PUT", f"{SYMBOLS}/{symbol}", json={"backfill_status": "completed"}), 409)  # pending → completed is not legal
    problem(api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"backfill_status": "done"}), 422)
    problem(api.call("PATCH", f"{SYMBOLS}/{symbol}", json={}), 422)
    assert problem(api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"asset_class": "crypto"}), 422)["field"] == "asset_class"
    problem(api.call("PATCH", f"{SYMBOLS}/NOPE{symbol}", json={"active": True}), 404)
    # An error describes a failed backfill only.
    assert problem(api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"backfill_error": "boom"}), 422)["field"] == "backfill_error"
    assert api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"asset_class": "etf"}).json()["asset_class"] == "etf"

    assert api.call("PUT", f"{SYMBOLS}/{symbol}", json={"backfill_status": "in_progress"}).json()["backfill_status"] == "in_progress"
    failed = api.call("PUT", f"{SYMBOLS}/{symbol}", json={"backfill_status": "failed", "backfill_error": "vendor 503"}).json()
    assert failed["backfill_status"] == "failed" and failed["backfill_error"] == "vendor 503" and failed["last_backfill"]
    api.call("PUT", f"{SYMBOLS}/{symbol}", json={"backfill_status": "in_progress"})
    problem(api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"backfill_status": "completed", "backfill_error": "boom"}), 422)
    done = api.call("PATCH", f"{SYMBOLS}/{symbol}", json={"backfill_status": "completed"}).json()
    assert done["backfill_status"] == "completed" and done["backfill_error"] is None
    history = psql(f"SELECT outcome || ':' || coalesce(error, '') FROM backfill_history h JOIN tracked_symbols s ON s.id = h.symbol_id "
                   f"WHERE s.symbol = '{symbol}' ORDER BY h.id")
    assert history.splitlines() == ["failed:vendor 503", "completed:"]


def test_soft_delete_and_reactivation_keep_history(api):
    symbol = add(api, ticker())
    api.call("PUT", f"{SYMBOLS}/{symbol['symbol']}", json={"backfill_status": "in_progress"})
    api.call("PUT", f"{SYMBOLS}/{symbol['symbol']}", json={"backfill_status": "completed"})
    removed = api.call("DELETE", f"{SYMBOLS}/{symbol['symbol']}")
    assert removed.status_code == 200 and removed.json()["active"] is False and removed.json()["id"] == symbol["id"]
    assert api.call("GET", f"{SYMBOLS}/{symbol['symbol']}").json()["active"] is False  # still there
    assert api.call("DELETE", f"{SYMBOLS}/{symbol['symbol']}").status_code == 200  # idempotent
    again = api.call("POST", SYMBOLS, json={"symbol": symbol["symbol"].lower(), "asset_class": "stock"})
    assert again.status_code == 200 and again.json()["id"] == symbol["id"] and again.json()["active"] is True
    assert again.json()["last_backfill"] is not None
    assert psql(f"SELECT count(*) FROM backfill_history WHERE symbol_id = {symbol['id']}") == "1"
    actions = [e["action"] for e in every(api, ADMIN + "/audit-log")
               if e["target_type"] == "symbol" and e["target_id"] == symbol["symbol"]]
    assert actions == ["symbol.added", "symbol.updated", "symbol.updated", "symbol.removed", "symbol.reactivated"]
    problem(api.call("DELETE", f"{SYMBOLS}/ZZZZZZ9"), 404)
    # A NUL names no symbol: 404, as any unknown one. (nginx refuses %00 itself with a 400,
    # so this goes straight to the pool's socket.)
    for method in ("GET", "PATCH", "DELETE"):
        params = fcgi.base_params(method, uri=f"{SYMBOLS}/{symbol['symbol']}%00", HTTP_X_API_KEY=api.key,
                                  CONTENT_TYPE="application/json", CONTENT_LENGTH="16")
        status, _, body = fcgi.request(api.stack.socket, params, body=b'{"active": true}')
        assert status == 404, (method, body)


def test_four_concurrent_claimers_split_the_due_symbols_without_overlap(api):
    psql("UPDATE tracked_symbols SET backfill_status = 'completed', last_backfill = now(), backfill_started_at = NULL")
    due = {add(api, ticker())["symbol"] for _ in range(23)}
    claimed, statuses, errors = [], [], []

    def claimer():  # (records only: an assert here would end the thread, not fail the test)
        session = api.stack.session()
        while True:
            r = session.post(api.stack.base + CLAIM, json={"limit": 3}, headers={"X-API-Key": api.key}, timeout=20)
            if r.status_code != 200:
                errors.append(r.text)
                return
            items = r.json()["items"]
            if not items:
                return
            claimed.extend(item["symbol"] for item in items)
            statuses.extend(item["backfill_status"] for item in items)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(claimed) == len(set(claimed)), "a symbol was claimed twice"
    assert set(claimed) == due and set(statuses) == {"in_progress"}
    in_progress = psql("SELECT symbol FROM tracked_symbols WHERE backfill_status = 'in_progress'").split()
    assert set(in_progress) == due
    assert api.call("POST", CLAIM, json={"limit": 10}).json() == {"items": []}


def test_a_stuck_claim_becomes_claimable_after_the_lease(api):
    psql("UPDATE tracked_symbols SET backfill_status = 'completed', last_backfill = now(), backfill_started_at = NULL")
    symbol = add(api, ticker(), "etf")["symbol"]
    first = api.call("POST", CLAIM, json={"limit": 5, "asset_class": "etf"}).json()["items"]
    assert [s["symbol"] for s in first] == [symbol]
    assert api.call("POST", CLAIM, json={"limit": 5}).json()["items"] == []
    psql(f"UPDATE tracked_symbols SET backfill_started_at = now() - interval '2 hours' WHERE symbol = '{symbol}'")  # lease: 1 h
    assert [s["symbol"] for s in api.call("POST", CLAIM, json={"limit": 5}).json()["items"]] == [symbol]
    # Completed long ago (past backfill_interval) is due again; removed symbols never are.
    psql(f"UPDATE tracked_symbols SET backfill_status = 'completed', last_backfill = now() - interval '2 days' WHERE symbol = '{symbol}'")
    assert [s["symbol"] for s in api.call("POST", CLAIM, json={}).json()["items"]] == [symbol]
    psql(f"UPDATE tracked_symbols SET backfill_status = 'pending' WHERE symbol = '{symbol}'")
    api.call("DELETE", f"{SYMBOLS}/{symbol}")
    assert api.call("POST", CLAIM, json={}).json()["items"] == []
    problem(api.call("POST", CLAIM, json={"limit": 0}), 422)
    problem(api.call("POST", CLAIM, json={"asset_class": "bond"}), 422)


def test_pagination_returns_every_row_exactly_once_while_rows_are_added(api):
    before = {s["id"] for s in every(api, SYMBOLS, active="all")}
    stop = threading.Event()
    added = []

    def writer():
        session = api.stack.session()
        while not stop.is_set():
            r = session.post(api.stack.base + SYMBOLS, json={"symbol": ticker(), "asset_class": "stock"}, headers={"X-API-Key": api.key}, timeout=10)
            if r.status_code == 201:
                added.append(r.json()["id"])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen, cursor = [], None
        while True:
            params = {"active": "all", "limit": 4} | ({"cursor": cursor} if cursor else {})
            body = api.call("GET", SYMBOLS, params=params).json()
            seen += [s["id"] for s in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join(10)
    assert added, "no row was added while paging: the race this test is about never happened"
    assert len(seen) == len(set(seen)), "a row appeared twice"
    assert before <= set(seen), "a row that existed before paging was skipped"
    assert seen == sorted(seen)


def test_symbols_cli(stack):
    def cli(*args):
        return subprocess.run([stack.bin, "symbols", *args, "--config", stack.config], capture_output=True, text=True, timeout=60)
    name = ticker()
    added = cli("add", name.lower(), "--asset-class", "stock", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["symbol"] == name
    assert name in cli("list").stdout
    assert json.loads(cli("show", name, "--json").stdout)["active"] is True
    assert json.loads(cli("remove", name, "--json").stdout)["active"] is False
    duplicate = cli("add", "BTC-USD", "--asset-class", "crypto")
    assert duplicate.returncode != 0 and "409" in duplicate.stderr
    bad = cli("add", "NOT A TICKER", "--asset-class", "stock")
    assert bad.returncode != 0 and "symbol" in bad.stderr
