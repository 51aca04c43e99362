"""The pre-forked pool under stress: crashes, stops, reloads, recycling, timeouts."""
import os
import resource
import signal
import socket
import threading
import time

import requests

import fcgi


def _eventually(condition, message, timeout=5):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


def _dev_null_fds(pid):
    """How many of the process's descriptors are /dev/null (a stopping worker's handler
    dup2()s /dev/null over its listening socket)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        except OSError:
            pass
    return count


def _get(stack, path, timeout=10):
    return requests.get(stack.aux_base + path, verify=stack.ca, timeout=timeout)


def test_killed_worker_is_replaced_within_a_second(stack, aux_pool):
    pool = aux_pool(workers=3)
    pids = pool.worker_pids()
    os.kill(pids[0], signal.SIGKILL)
    started = time.monotonic()
    new_pids = pool.wait_for_workers(3, timeout=1.0, exclude=(pids[0],))
    assert time.monotonic() - started < 1.0
    assert pids[0] not in new_pids and set(pids[1:]) <= set(new_pids)
    assert all(_get(stack, "/healthz").status_code == 200 for _ in range(20))
    assert pool.status()["restarts"]["crash"] == 1


def _slow_request_in_flight(stack, pool, ms):
    """Starts GET /debug/sleep?ms=… on the aux pool; returns once a worker is busy with it:
    (the thread, a dict that gets the "response")."""
    result = {}

    def slow():
        result["response"] = _get(stack, f"/debug/sleep?ms={ms}")

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 5
    while not any(w["state"] == "busy" for w in pool.status()["workers"]):
        assert time.monotonic() < deadline, "the slow request never reached a worker"
        time.sleep(0.02)
    return thread, result


def test_sigterm_lets_in_flight_request_finish_then_exits_zero(stack, aux_pool):
    pool = aux_pool(workers=2)
    pids = pool.worker_pids()
    thread, result = _slow_request_in_flight(stack, pool, 1500)
    pool.signal(signal.SIGTERM)
    thread.join(10)
    assert result["response"].status_code == 200
    assert result["response"].json() == {"slept_ms": 1500}
    assert pool.process.wait(timeout=10) == 0
    time.sleep(0.1)
    for pid in pids + [pool.process.pid]:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived the master"
    assert not os.path.exists(os.path.join(pool.dir, "keygate.pid"))


def test_ctrl_c_to_the_whole_process_group_stops_in_order(stack, aux_pool):
    # A terminal's Ctrl-C (or kill -INT -PGID) reaches every process of the group. The
    # children ignore it; the master stops them in order, so the request in flight ends
    # well and the housekeeper stores the usage last.
    pool = aux_pool(workers=2)
    thread, result = _slow_request_in_flight(stack, pool, 1000)
    os.killpg(pool.process.pid, signal.SIGINT)
    thread.join(10)
    assert result["response"].status_code == 200
    assert pool.process.wait(timeout=10) == 0
    assert "pool stopped" in pool.log_text()


def test_sigusr1_and_sigusr2_leave_the_master_running(stack, aux_pool):
    pool = aux_pool(workers=1)
    for signo in (signal.SIGUSR1, signal.SIGUSR2):
        pool.signal(signo)
    _eventually(lambda: "signal 10 ignored" in pool.log_text() and "signal 12 ignored" in pool.log_text(), "the master never logged them")
    assert pool.process.poll() is None
    assert _get(stack, "/healthz").status_code == 200


def test_sighup_replaces_every_worker_without_a_failed_request(stack, aux_pool):
    pool = aux_pool(workers=3)
    old = set(pool.worker_pids())
    stop = threading.Event()
    outcomes = []

    def loop():
        session = stack.session()
        while not stop.is_set():
            try:
                outcomes.append(session.get(stack.aux_base + "/healthz", timeout=5).status_code)
            except requests.RequestException as error:
                outcomes.append(repr(error))

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    pool.write_config(workers=2)  # the reload also applies new settings
    pool.signal(signal.SIGHUP)
    new = pool.wait_for_workers(2, timeout=10, exclude=old)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not (set(new) & old)
    assert len(outcomes) > 50
    failures = [o for o in outcomes if o != 200]
    assert failures == [], failures[:5]
    status = pool.status()
    assert status["generation"] == 2 and status["reloads"] == 1
    assert all(w["generation"] == 2 for w in status["workers"])


def test_a_reload_does_not_break_a_request_whose_body_is_still_arriving(stack, aux_pool):
    # The master's SIGTERM reaches the old worker while it waits for the rest of a body.
    # The read must go on after the handler (SA_RESTART): libfcgi takes EINTR for an
    # error, which the worker would answer as a body shorter than its Content-Length.
    pool = aux_pool(workers=1)
    old = pool.worker_pids()
    s = fcgi.open_request(stack.aux_socket, fcgi.base_params("POST", "/healthz", CONTENT_LENGTH="10",
                                                             CONTENT_TYPE="application/json"))
    try:
        fcgi.send_stdin(s, b"{\"a\":")
        deadline = time.monotonic() + 5
        while not any(w["state"] == "busy" for w in pool.status()["workers"]):
            assert time.monotonic() < deadline, "the request never reached a worker"
            time.sleep(0.02)
        quiet = _dev_null_fds(old[0])
        pool.signal(signal.SIGHUP)
        # The old worker's stop handler has run (it put /dev/null over its socket) while
        # it waits inside the body: the moment this test is about.
        _eventually(lambda: _dev_null_fds(old[0]) > quiet, "the old worker never had its SIGTERM")
        fcgi.send_stdin(s, b" 1}  ", last=True)
        status, _, body = fcgi.read_response(s)
    finally:
        s.close()
    assert status == 405, body  # read whole, then refused for its method: not a 400
    assert pool.wait_for_workers(1, exclude=old)


def test_invalid_config_on_sighup_keeps_workers(stack, aux_pool):
    pool = aux_pool(workers=2)
    pids = pool.worker_pids()
    with open(pool.config) as f:
        good = f.read()
    with open(pool.config, "a") as f:
        f.write("workers = lots\n")
    pool.signal(signal.SIGHUP)
    _eventually(lambda: "reload failed" in pool.log_text(), "the master never refused the reload")
    assert "workers: expected an integer" in pool.log_text()
    with open(pool.config, "w") as f:
        f.write(good)  # status reads the same file
    assert pool.worker_pids() == pids
    assert pool.status()["generation"] == 1
    assert _get(stack, "/healthz").status_code == 200


def test_reload_refuses_a_password_file_the_workers_could_not_read(stack, aux_pool):
    # Found by the new workers instead, every one of them exits while the old ones retire:
    # a crash loop that stops the whole pool.
    pool = aux_pool(workers=2, emergency_restart_threshold=3)
    pids = pool.worker_pids()
    missing = os.path.join(pool.dir, "no-such-password-file")
    pool.write_config(database_password_file=missing)
    pool.signal(signal.SIGHUP)
    _eventually(lambda: "reload failed" in pool.log_text(), "the master never refused the reload")
    assert "database_password_file" in pool.log_text()
    del pool.settings["database_password_file"]
    pool.write_config()
    assert pool.process.poll() is None, "the pool stopped"
    assert pool.worker_pids() == pids
    assert pool.status()["generation"] == 1
    assert _get(stack, "/healthz").status_code == 200


def test_worker_scheduling_batch_by_default_and_normal_after_a_reload(stack, aux_pool):
    # Workers and the housekeeper run under SCHED_BATCH (they must not preempt nginx);
    # worker_scheduling = normal puts the next generation back on the default policy.
    pool = aux_pool(workers=2)
    status = pool.status()
    children = [w["pid"] for w in status["workers"]] + [status["housekeeper"]["pid"]]
    assert [os.sched_getscheduler(pid) for pid in children] == [os.SCHED_BATCH] * 3
    assert os.sched_getscheduler(pool.process.pid) == os.SCHED_OTHER  # the master stays normal
    old = pool.worker_pids()
    pool.write_config(worker_scheduling="normal")
    pool.signal(signal.SIGHUP)
    new = pool.wait_for_workers(2, exclude=old)
    assert [os.sched_getscheduler(pid) for pid in new] == [os.SCHED_OTHER] * 2
    assert _get(stack, "/healthz").status_code == 200


def test_worker_recycled_after_max_requests(stack, aux_pool):
    pool = aux_pool(workers=1, max_requests=5)
    first = pool.worker_pids()
    codes = [_get(stack, "/healthz").status_code for _ in range(12)]
    assert codes == [200] * 12
    status = pool.status()
    assert status["restarts"]["recycle"] == 2
    assert status["restarts"]["crash"] == 0
    assert pool.worker_pids() != first
    assert status["workers"][0]["requests"] == 2


def test_worker_stuck_past_request_timeout_is_killed_and_replaced(stack, aux_pool):
    pool = aux_pool(workers=2, request_timeout=1)
    r = _get(stack, "/debug/sleep?ms=5000")
    assert r.status_code in (502, 503)  # nginx saw the worker die mid-request
    assert r.headers["Content-Type"].startswith("application/problem+json")
    pool.wait_for_workers(2, timeout=3)
    assert pool.status()["restarts"]["timeout"] == 1
    assert "request_timeout" in pool.log_text()
    assert _get(stack, "/healthz").status_code == 200


def test_a_peer_that_stops_mid_record_frees_its_worker_after_request_timeout(stack, aux_pool):
    # libfcgi reads the begin record and the params inside FCGX_Accept_r: the worker counts
    # as busy from the connection on, so the pool's request timeout covers that read too.
    pool = aux_pool(workers=2, request_timeout=1)
    stalled = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(stack.aux_socket)
        s.sendall(b"\x01\x01\x00")  # 3 of a record header's 8 bytes, then nothing
        stalled.append(s)
    try:
        started = time.monotonic()
        status, _, body = fcgi.request(stack.aux_socket, fcgi.base_params(), timeout=8)
        assert status == 200, body
        assert time.monotonic() - started < 4, "both workers were held until the stalled peers timed out"
        for s in stalled:
            s.settimeout(3)
            assert s.recv(1) == b"", "the worker closes the stalled connection"
    finally:
        for s in stalled:
            s.close()
    assert pool.status()["restarts"]["timeout"] == 2
    # A body that arrives in parts, slower than nothing at all, is still served.
    s = fcgi.open_request(stack.aux_socket, fcgi.base_params("POST", "/healthz", CONTENT_LENGTH="4"))
    try:
        fcgi.send_stdin(s, b"ab")
        time.sleep(0.2)
        fcgi.send_stdin(s, b"cd", last=True)
        status, _, _ = fcgi.read_response(s)
        assert status == 405
    finally:
        s.close()
    assert pool.status()["restarts"]["crash"] == 0


def test_a_peer_that_trickles_its_params_is_cut_off_at_request_timeout(stack, aux_pool):
    # A bound on each read would let a peer that sends a byte now and then hold a worker
    # for ever; the request timeout bounds the whole request, its params included.
    pool = aux_pool(workers=1, request_timeout=1)
    data = fcgi.head(fcgi.base_params())
    trickler = fcgi.connect(stack.aux_socket)
    stop = threading.Event()

    def trickle():
        try:
            for i in range(len(data) - 1):  # never the last byte
                if stop.wait(0.25):
                    return
                trickler.sendall(data[i:i + 1])
        except OSError:
            return  # cut off

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # the only worker has the trickling connection
        started = time.monotonic()
        status, _, body = fcgi.request(stack.aux_socket, fcgi.base_params(), timeout=10)
        assert status == 200, body
        assert time.monotonic() - started < 6, "the trickling peer held the only worker"
        assert pool.status()["restarts"]["timeout"] == 1
    finally:
        stop.set()
        thread.join()
        trickler.close()


def test_a_peer_asking_to_keep_its_connection_does_not_hold_the_worker(stack, aux_pool):
    # FCGI_KEEP_CONN would leave the connection open after the response, and the worker
    # waiting on it for a next request outside any timeout: it is closed regardless.
    pool = aux_pool(workers=1)
    kept = fcgi.open_request(stack.aux_socket, fcgi.base_params(), keep_conn=True)
    try:
        fcgi.send_stdin(kept, b"", last=True)
        status, _, _ = fcgi.read_response(kept)
        assert status == 200
        kept.settimeout(3)
        assert kept.recv(1) == b"", "the worker closes the connection after the response"
        started = time.monotonic()
        status, _, _ = fcgi.request(stack.aux_socket, fcgi.base_params(), timeout=5)
        assert status == 200 and time.monotonic() - started < 4
    finally:
        kept.close()
    assert pool.status()["restarts"]["timeout"] == 0


def _wait_until_in_accept(pid, timeout=5):
    """Until the process is blocked in accept(2) (x86-64: 43, accept4 288)."""
    deadline = time.monotonic() + timeout
    while open(f"/proc/{pid}/syscall").read().split()[0] not in ("43", "288"):
        assert time.monotonic() < deadline, "the worker never waited in accept"
        time.sleep(0.01)


def test_a_worker_out_of_file_descriptors_waits_then_is_replaced_not_crashed(stack, aux_pool):
    # Running out of descriptors passes when other work ends: a worker must not exit over
    # it as a crash (every worker at once would stop the pool). After 10 s it is replaced
    # as a recycle: a fresh process holds none of whatever this one might.
    pool = aux_pool(workers=1)
    pid = pool.worker_pids()[0]
    _wait_until_in_accept(pid)
    hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    taken = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = next(fd for fd in range(len(taken) + 1) if fd not in taken)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, hard))  # accept(2) now fails: EMFILE
    # The accept the worker is blocked in took its descriptor before the limit: that
    # connection still goes through, the next accepts fail.
    assert fcgi.request(stack.aux_socket, fcgi.base_params())[0] == 200
    deadline = time.monotonic() + 3
    while "Too many open files" not in pool.log_text():
        assert time.monotonic() < deadline, "accept never failed"
        time.sleep(0.02)
    failing_since = time.monotonic()
    answer = {}
    client = threading.Thread(target=lambda: answer.update(r=fcgi.request(stack.aux_socket, fcgi.base_params(), timeout=20)))
    client.start()
    time.sleep(2)  # a hundred failed accepts and more
    assert "r" not in answer, "nothing can be accepted meanwhile"
    assert pool.worker_pids() == [pid]
    assert pool.status()["restarts"]["crash"] == 0
    client.join(20)
    assert answer["r"][0] == 200, "the replacement serves the waiting request"
    assert time.monotonic() - failing_since >= 9
    restarts = pool.status()["restarts"]
    assert restarts["crash"] == 0 and restarts["recycle"] == 1
    assert pool.worker_pids() != [pid]
    log = pool.log_text()
    assert "the worker exits to be replaced" in log
    assert log.count("accept failed; retrying") < 20, "logged once per hundred failures, not every 10 ms"


def test_crash_loop_stops_the_pool_with_a_clear_log_line(stack, aux_pool):
    pool = aux_pool(workers=1, emergency_restart_threshold=3, emergency_restart_interval=60)
    for attempt in range(3):
        pid = pool.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        if attempt < 2:
            pool.wait_for_workers(1, timeout=5, exclude=(pid,))
    assert pool.process.wait(timeout=20) == 1
    assert "EMERGENCY" in pool.log_text()
