"""Integration-test fixtures. scripts/test starts the stack (keygate pool + nginx over
HTTPS, later PostgreSQL and PgBouncer) and passes its coordinates in KG_* variables.
Run by hand without them, the tests skip visibly; under CI=true a missing stack fails."""
import itertools
import json
import os
import signal
import subprocess
import time

import pytest
import requests
import urllib3

urllib3.disable_warnings()


def _env(name):
    value = os.environ.get(name)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not set: run the integration tests through scripts/test", pytrace=False)
        pytest.skip(f"{name} not set (run through scripts/test)")
    return value


class Stack:
    def __init__(self):
        self.base = _env("KG_BASE")            # https://127.0.0.1:18443
        self.http_base = _env("KG_HTTP_BASE")  # http://127.0.0.1:18080
        self.aux_base = _env("KG_AUX_BASE")    # https://127.0.0.1:18444 → aux pool
        self.ca = _env("KG_CA")
        self.run = _env("KG_RUN")
        self.bin = _env("KG_BIN")
        self.socket = _env("KG_SOCKET")
        self.aux_socket = _env("KG_AUX_SOCKET")
        self.config = os.path.join(self.run, "keygate.conf")

    def settings(self):
        """The main pool's configuration file as a dict."""
        values = {}
        with open(self.config) as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    values[key.strip()] = value.strip()
        return values

    def session(self):
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
        return s

    def status(self, config=None):
        out = subprocess.run([self.bin, "status", "--json", "--config", config or self.config],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture(scope="session")
def stack():
    return Stack()


@pytest.fixture()
def client(stack):
    return stack.session()


class AuxPool:
    """A keygate pool of its own behind the test nginx's aux server (KG_AUX_BASE),
    for tests that kill, stop or reconfigure a pool."""
    _made = itertools.count(1)

    def __init__(self, stack, **settings):
        self.stack = stack
        self.dir = os.path.join(stack.run, "aux")
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "keygate.conf")
        # A log of its own, kept: the last test of the run searches every log for keys.
        self.log_path = os.path.join(self.dir, f"keygate-{next(AuxPool._made)}.log")
        self.settings = {"listen": stack.aux_socket, "listen_mode": "0666", "runtime_dir": self.dir,
                         "workers": 2, "debug_routes": "on", "shutdown_timeout": 10}
        main = stack.settings()
        for key in ("database_url", "database_direct_url", "migrations_dir", "pepper_file", "openapi_file"):
            self.settings[key] = main[key]
        self.settings.update(settings)
        self.process = None

    def write_config(self, **changes):
        self.settings.update(changes)
        with open(self.config, "w") as f:
            for key, value in self.settings.items():
                f.write(f"{key} = {value}\n")

    def start(self):
        self.write_config()
        self.log = open(self.log_path, "ab")
        # A process group of its own, as under a terminal or a service manager: tests may
        # signal the whole group.
        self.process = subprocess.Popen([self.stack.bin, "serve", "--config", self.config],
                                        stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_for_workers(self.settings["workers"])
        return self

    def status(self):
        return self.stack.status(self.config)

    def worker_pids(self):
        return sorted(w["pid"] for w in self.status()["workers"] if w["state"] in ("idle", "busy", "starting"))

    def wait_for_workers(self, count, timeout=10, exclude=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # One status read per look (each runs the keygate binary).
                workers = [w for w in self.status()["workers"] if w["pid"] not in exclude]
                live = sorted(w["pid"] for w in workers if w["state"] in ("idle", "busy", "starting"))
                if len(live) == count and len([w for w in workers if w["state"] == "idle"]) == count:
                    return live
            except (AssertionError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"pool did not reach {count} idle workers; status: {self.status()}")

    def signal(self, signo):
        self.process.send_signal(signo)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "log"):
            self.log.close()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture()
def aux_pool(stack):
    pools = []

    def make(**settings):
        pool = AuxPool(stack, **settings)
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.stop()
