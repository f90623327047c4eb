#!/usr/bin/env python3
"""Soak: mixed load on a release server, killed with SIGKILL and restarted on a schedule.

Writers push NDJSON batches (one `batch` id per request) at a target rate, viewers reload the
demo dashboards' panels, the demo's alert rules evaluate, a hostile query runs every 10 s, and
the server is SIGKILLed and restarted every `--kill-every` seconds. At the end every batch the
server acknowledged must be there exactly once (no row lost, none twice), and the report gives
resident memory over time and every 5xx. Not part of CI (figures go in the issue note).

    cargo build --release --locked
    python3 benches/soak.py --binary target/release/opsboard --minutes 30
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HOSTILE = [
    "SELECT count(*) FROM range(9000000) a JOIN range(1000) b ON a.value % 1000 = b.value",
    "SELECT value FROM range(9000000) ORDER BY value * 7919 % 1000003 LIMIT 5",
    "SELECT repeat('x', 100000000)",
    "SELECT array_agg(value) FROM range(9000000)",
    "SELECT count(*) FROM range(3000) a, range(3000) b",
    "SELECT sum(v) OVER (ORDER BY value ROWS BETWEEN 1000 PRECEDING AND CURRENT ROW) FROM (SELECT value, value * 2 AS v FROM range(5000000))",
]


class Server:
    def __init__(self, binary, root, port):
        self.binary, self.root, self.port = binary, root, port
        self.proc = None

    def args(self, *extra):
        return [self.binary, *extra, "--data-dir", f"{self.root}/data", "--tenants-dir", f"{self.root}/tenants"]

    def start(self):
        log = open(f"{self.root}/server.log", "a")
        self.proc = subprocess.Popen(
            self.args("serve", "--demo", "--listen", f"127.0.0.1:{self.port}"),
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "OPSBOARD_LOG": "opsboard=warn"})
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}          # batch id -> rows
        self.server_errors = []  # (time, route, status, body)
        self.statuses = {}

    def count(self, route, status, body=b""):
        with self.lock:
            key = f"{route} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            # 503 + Retry-After on a write is backpressure (memory.budget), which clients
            # retry; every other 5xx is a fault.
            if status >= 500 and not (route == "write" and status == 503):
                self.server_errors.append((time.time(), route, status, body[:200]))


def request(port, method, path, key, body=None, content_type=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()


def writer(port, key, stats, stop, rate, wid):
    rows_per_batch = 5000
    interval = rows_per_batch / rate
    seq = 0
    while not stop.is_set():
        started = time.time()
        batch = f"{wid}-{seq}"
        seq += 1
        now_ns = time.time_ns()
        body = "".join(
            json.dumps({"time": now_ns + i, "batch": batch, "host": f"h{i % 400}", "v": i * 0.5}) + "\n"
            for i in range(rows_per_batch))
        for _attempt in range(10):
            try:
                status, text = request(port, "POST", "/api/v1/tenants/demo/write/soak?precision=ns", key,
                                       body.encode(), "application/x-ndjson")
                stats.count("write", status, text)
                if status == 200:
                    with stats.lock:
                        stats.acked[batch] = rows_per_batch
                if status != 503:
                    break
            except OSError:
                stats.count("write", 0)
                break
            time.sleep(1)
        time.sleep(max(0.0, interval - (time.time() - started)))


def viewer(port, key, stats, stop):
    panels = []
    while not stop.is_set():
        try:
            if not panels:
                status, text = request(port, "GET", "/api/v1/tenants/demo/dashboards/default", key)
                stats.count("dashboard", status, text)
                if status == 200:
                    found = json.loads(text)
                    panels = [p["data_url"] for p in found.get("panels", []) if p.get("data_url")]
                continue
            for url in panels:
                status, text = request(port, "GET", f"{url}?from=now-24h", key)
                stats.count("panel", status, text)
        except OSError:
            stats.count("panel", 0)
            time.sleep(0.2)
        time.sleep(random.uniform(0.5, 1.5))


def hostile(port, key, stats, stop):
    while not stop.wait(10):
        sql = random.choice(HOSTILE)
        try:
            status, text = request(port, "POST", "/api/v1/tenants/demo/query", key,
                                   json.dumps({"sql": sql}).encode(), "application/json", timeout=120)
            stats.count("hostile", status, text)
        except OSError:
            stats.count("hostile", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/opsboard")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--kill-every", type=float, default=300)
    ap.add_argument("--rate", type=float, default=50000, help="rows/s over all writers")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--port", type=int, default=18080)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="opsboard-soak-")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shutil.copytree(f"{repo}/tenants/demo", f"{root}/tenants/demo")
    server = Server(os.path.abspath(a.binary), root, a.port)
    server.start()
    keys = [subprocess.check_output(server.args("apikey", "create", "--tenant", "demo", "--scope", "ingest,read",
                                                "--expires", "1d"), text=True).strip() for _ in range(12)]
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=writer, args=(a.port, keys[i % 2], stats, stop, a.rate / a.writers, i))
               for i in range(a.writers)]
    threads += [threading.Thread(target=viewer, args=(a.port, keys[2 + i % 9], stats, stop)) for i in range(a.viewers)]
    threads.append(threading.Thread(target=hostile, args=(a.port, keys[11], stats, stop)))
    for t in threads:
        t.start()
    began = time.time()
    last_kill, rss, kills = began, [], 0
    while time.time() - began < a.minutes * 60:
        time.sleep(5)
        rss.append((round(time.time() - began), server.rss_mb()))
        if time.time() - last_kill >= a.kill_every:
            server.kill()
            kills += 1
            server.start()
            last_kill = time.time()
    stop.set()
    for t in threads:
        t.join()
    time.sleep(2)
    status, text = request(a.port, "POST", "/api/v1/tenants/demo/query", keys[0],
                           json.dumps({"sql": "SELECT batch, count(*) AS n FROM soak GROUP BY batch"}).encode(),
                           "application/json", timeout=600)
    stored = {r["batch"]: r["n"] for r in json.loads(text)} if status == 200 else {}
    lost = [b for b in stats.acked if stored.get(b, 0) < stats.acked[b]]
    doubled = [b for b, n in stored.items() if n > 5000]
    server.kill()
    samples = [m for _, m in rss if m]
    report = {
        "minutes": a.minutes, "kills": kills, "acked_batches": len(stats.acked),
        "acked_rows": sum(stats.acked.values()),
        "rows_per_s": round(sum(stats.acked.values()) / (a.minutes * 60)),
        "lost_batches": len(lost), "doubled_batches": len(doubled),
        "server_errors": len(stats.server_errors), "first_errors": [str(e) for e in stats.server_errors[:5]],
        "rss_mb": {"min": round(min(samples)), "max": round(max(samples)),
                   "first_5min_max": round(max(m for t, m in rss if m and t <= 300)),
                   "last_5min_max": round(max(m for t, m in rss if m and t >= a.minutes * 60 - 300))},
        "statuses": stats.statuses, "data": root,
    }
    print(json.dumps(report, indent=2))
    return 0 if not lost and not doubled and not stats.server_errors else 1


if __name__ == "__main__":
    sys.exit(main())
