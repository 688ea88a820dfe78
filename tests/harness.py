"""Shared pieces of provwatch's integration tests: the simulator, configs, the daemon.

Every wait is bounded and ends on the awaited event (a file, a line, a process exit), never on a
fixed sleep. Tests exit 0 (pass), 1 (fail) or 77 (skip, with the reason printed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
SKIP = 77


def provwatch_binary() -> str:
    path = os.environ.get("PROVWATCH")
    if not path:
        path = os.path.join(SOURCE_ROOT, "build", "src", "provwatch")
    if not os.access(path, os.X_OK):
        skip(f"provwatch binary not found at {path} (set PROVWATCH)")
    return path


def skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


class Failure(AssertionError):
    pass


def check(cond: Any, message: str) -> None:
    if not cond:
        raise Failure(message)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Polls pred (a cheap, local check) until it is truthy; bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def closed_port() -> int:
    """A loopback port nobody listens on: connections there are refused at once."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it does not go within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Sim:
    """The Partner Center simulator (tests/pcsim.py) on loopback."""

    def __init__(self, workdir: str, *args: str, scenario: Optional[dict] = None, tls: Optional[tuple] = None):
        self.workdir = workdir
        port_file = os.path.join(workdir, f"pcsim-{id(self)}.port")
        cmd = [sys.executable, os.path.join(HERE, "pcsim.py"), "--port-file", port_file,
               "--log", os.path.join(workdir, "pcsim.log")]
        if scenario is not None:
            path = os.path.join(workdir, f"scenario-{id(self)}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(scenario, f)
            cmd += ["--scenario", path]
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.tls = bool(tls)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise Failure(f"simulator exited with {self.proc.returncode}")
            return os.path.exists(port_file)

        wait_until(ready, 20, "the simulator to listen")
        with open(port_file, encoding="utf-8") as f:
            self.port = int(f.read().strip())
        self.control_base = f"http://127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{self.port}"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control_base + "/_control/" + path.lstrip("/"), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def requests(self, since: int = 0, kind: str = "api") -> list[dict]:
        return self.control("GET", f"requests?since={since}&kind={kind}")["requests"]

    def fault(self, **kw: Any) -> int:
        return self.control("POST", "fault", kw)["id"]

    def clear_faults(self) -> None:
        self.control("DELETE", "fault")

    def stop(self) -> None:
        stop_process(self.proc)


def overlapping_requests(requests: list[dict], restarts: tuple = ()) -> list[tuple[dict, dict]]:
    """Pairs (earlier, later) of provisioning-status requests of one order where the later one
    arrived at the simulator before the earlier one's answer was done ("done_mono"; None: never
    done): two polls of one order in flight at once. `restarts` are pairs (ended, started) of
    monotonic times: a run of the daemon was killed or stopped, and the next one started (the same
    time again after the last run). A request the ended run abandoned may still be in flight when
    the next run polls the order again, so pairs on both sides of a restart are left out: the
    earlier request arrived before the next run started, the later one after the end."""
    by_order: dict = {}
    for r in requests:
        if r.get("op") == "provisioningstatus" and r.get("order"):
            by_order.setdefault((r["customer"], r["order"]), []).append(r)
    out = []
    for reqs in by_order.values():
        reqs.sort(key=lambda r: r["mono"])
        for i, later in enumerate(reqs):
            for earlier in reqs[:i]:
                done = earlier["done_mono"]
                if (done is None or later["mono"] < done) and \
                        not any(earlier["mono"] <= started and later["mono"] >= ended for ended, started in restarts):
                    out.append((earlier, later))
    return out


def describe_request(r: dict, t0: float = 0.0) -> str:
    done = "pending" if r["done_mono"] is None else f"{r['done_mono'] - t0:.3f}"
    return f"#{r['index']} {r['order']} {r['status']} {r['mono'] - t0:.3f}..{done}"


class Env:
    """A scratch directory with secrets, state and config files."""

    def __init__(self, name: str):
        self.dir = tempfile.mkdtemp(prefix=f"provwatch-{name}-")
        self.state = os.path.join(self.dir, "state")
        self.write("client-secret", "test-secret\n", 0o600)
        self.write("refresh-token", "initial-refresh-token\n", 0o600)

    def write(self, name: str, text: str, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def config(self, sim: Sim, orders: list[tuple[str, str]], poll: Optional[dict] = None,
               extra: str = "", pc: Optional[dict] = None, name: str = "provwatch.conf") -> str:
        p = {"interval": "2m", "concurrency": "8", "max-requests-per-minute": "0"}
        p.update(poll or {})
        pcs = {
            "endpoint": sim.url,
            "token-endpoint": f"{sim.url}/{{tenant-id}}/oauth2/token",
            "tenant-id": "tenant1",
            "client-id": "test-client",
            "client-secret-file": os.path.join(self.dir, "client-secret"),
            "refresh-token-file": os.path.join(self.dir, "refresh-token"),
            "timeout": "5s",
        }
        pcs.update(pc or {})
        lines = ["[partner-center]"] + [f"{k} = {v}" for k, v in pcs.items() if v is not None]
        lines += ["", "[poll]"] + [f"{k} = {v}" for k, v in p.items()]
        lines += ["", "[orders]", "orders-dir ="] + [f"order = {c} {o}" for c, o in orders]
        lines += ["", "[state]", f"directory = {self.state}", "", "[journal]", "enabled = no", ""]
        return self.write(name, "\n".join(lines) + extra + "\n")

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def printed_events(path: str) -> list[dict]:
    """The JSON lines a run (maybe killed) printed into a file; a line cut by a kill is not an event."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    events = [json.loads(line) for line in lines[:-1] if line]
    if lines[-1]:
        try:
            events.append(json.loads(lines[-1]))
        except ValueError:
            pass
    return events


def parse_events(stdout: str) -> list[dict]:
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line:
            events.append(json.loads(line))
    return events


def run(args: list[str], timeout: float = 60, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([provwatch_binary()] + args, capture_output=True, text=True, timeout=timeout,
                          env=e, stdin=subprocess.DEVNULL)


def run_once(config: str, timeout: float = 60, env: Optional[dict] = None) -> tuple[int, list[dict], str]:
    p = run(["-c", config, "once"], timeout=timeout, env=env)
    try:
        events = parse_events(p.stdout)
    except json.JSONDecodeError as e:
        raise Failure(f"stdout is not JSON lines: {e}: {p.stdout[:500]!r}")
    return p.returncode, events, p.stderr


class Daemon:
    """`provwatch run --print-events` in the background; events arrive on a queue."""

    def __init__(self, config: str, args: Optional[list[str]] = None, env: Optional[dict] = None,
                 print_events: bool = True, wrapper: Optional[list[str]] = None, stderr: Optional[int] = None):
        e = dict(os.environ)
        e.update(env or {})
        self.stderr_path = config + ".stderr"
        self.stderr = open(self.stderr_path, "w", encoding="utf-8")
        if stderr is not None:  # e.g. a journal stream; log() then reads an empty file
            self.stderr.close()
            self.stderr = os.fdopen(os.dup(stderr), "w")
        cmd = (wrapper or []) + [provwatch_binary(), "-c", config] + (args or []) + \
            (["--print-events"] if print_events else []) + ["run"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=e,
                                     stdin=subprocess.DEVNULL)
        self.all_events: list[dict] = []
        self.printed_at: dict[str, float] = {}  # event id -> time.monotonic() its line arrived (after its commit)
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            now = time.monotonic()
            line = line.strip()
            if line:
                ev = json.loads(line)
                with self.cond:
                    self.printed_at.setdefault(ev.get("id"), now)
                    self.all_events.append(ev)
                    self.cond.notify_all()

    def wait_event(self, pred: Callable[[dict], bool], timeout: float, what: str, since: int = 0) -> dict:
        """The first event at or after index `since` that satisfies pred (events are never consumed)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.all_events[since:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"timed out after {timeout}s waiting for {what}; log:\n{self.log_tail()}")
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise Failure(f"daemon exited with {self.proc.returncode} while waiting for {what}; "
                                  f"log:\n{self.log_tail()}")
                self.cond.wait(min(left, 0.5))

    def log(self) -> str:
        if not self.stderr.closed and self.stderr.name == self.stderr_path:
            self.stderr.flush()
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, text: str, timeout: float, what: Optional[str] = None) -> None:
        """wait_until() the daemon's log holds text; a timeout shows the log's end."""
        try:
            wait_until(lambda: text in self.log(), timeout, f"{what or repr(text)} in the log")
        except Failure as e:
            raise Failure(f"{e}; log:\n{self.log_tail()}") from None

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise Failure(f"daemon did not stop within {timeout}s after signal {sig}")
        self.reader.join(5)
        self.stderr.close()
        return self.proc.returncode


class WebhookReceiver:
    """tests/webhook_receiver.py in the background; its log file records every attempt, and can be
    read after the receiver stopped."""

    def __init__(self, workdir: str, name: str, secret: Optional[str] = None, secret_file: Optional[str] = None):
        self.log_path = os.path.join(workdir, f"receiver-{name}.log")
        port_file = os.path.join(workdir, f"receiver-{name}.port")
        cmd = [sys.executable, os.path.join(HERE, "webhook_receiver.py"), "--port-file", port_file,
               "--log", self.log_path]
        if secret is not None:
            cmd += ["--secret", secret]
        if secret_file is not None:
            cmd += ["--secret-file", secret_file]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise Failure(f"receiver {name} exited with {self.proc.returncode}")
            return os.path.exists(port_file)

        wait_until(ready, 20, f"receiver {name} to listen")
        with open(port_file, encoding="utf-8") as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def control(self, **mode: Any) -> None:
        """POST /_control: e.g. control(mode="status", status=503, retry_after=2, count=3), control(hang=5)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_control", data=json.dumps(mode).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def attempts(self) -> list[dict]:
        """Every request recorded so far, in the order answered (a line being written is left out)."""
        with open(self.log_path, encoding="utf-8") as f:
            text = f.read()
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def delivered(self) -> list[dict]:
        """The attempts answered 2xx."""
        return [a for a in self.attempts() if 200 <= a["answered"] < 300]

    def delivered_ids(self) -> set:
        return {a["id"] for a in self.delivered()}

    def wait_delivered(self, ids: Any, timeout: float, what: str) -> None:
        ids = set(ids)
        wait_until(lambda: ids <= self.delivered_ids(), timeout, what, interval=0.05)

    def stop(self) -> None:
        stop_process(self.proc)


def main(tests: list[Callable[[], None]]) -> None:
    """Runs each test function, prints one line per test, exits 0/1. PROVWATCH_TEST_ONLY=a,b runs only
    the tests whose names contain one of those words (to replay one while working on it)."""
    only = [w for w in os.environ.get("PROVWATCH_TEST_ONLY", "").split(",") if w]
    if only:
        tests = [t for t in tests if any(w in t.__name__ for w in only)]
    failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
        except SystemExit:
            raise
        except BaseException:  # noqa: BLE001 - report every failure, then go on
            failed += 1
            print(f"FAIL {t.__name__}", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed} of {len(tests)} passed")
    sys.exit(1 if failed else 0)
