#!/usr/bin/env python3
"""Memory under load: sustained ingest at a given memory.budget, then a compaction of one day.

Phase 1 — four writers post 5,000-row TSBS NDJSON bodies (500 hosts x 10 steps) as fast as the
server answers for `--seconds`; a 503 with Retry-After is backpressure and the body is sent
again. Resident memory and /healthz's consumers are sampled every 100 ms.
Phase 2 — `opsboard generate` writes one UTC day of 400 hosts at 10 s (3,456,000 rows) as
many small files; a server then compacts them into one, resident memory sampled throughout.

Not part of CI (figures go in the issue note):

    cargo build --release --locked
    python3 benches/memory.py --binary target/release/opsboard --budget 268435456
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from soak import request  # the same HTTP helper as the soak (benches/ is on sys.path)


class Server:
    def __init__(self, binary, root, config):
        self.binary, self.root = binary, root
        os.makedirs(f"{root}/tenants/acme", exist_ok=True)
        with open(f"{root}/opsboard.yaml", "w") as f:
            f.write(config)
        self.proc, self.port = None, None

    def args(self, *extra):
        return [self.binary, *extra, "--config", f"{self.root}/opsboard.yaml",
                "--data-dir", f"{self.root}/data", "--tenants-dir", f"{self.root}/tenants"]

    def start(self, env=None):
        log = open(f"{self.root}/server.log", "a")
        self.proc = subprocess.Popen(self.args("serve", "--listen", "127.0.0.1:0"),
                                     stdout=subprocess.PIPE, stderr=log, text=True,
                                     env={**os.environ, "OPSBOARD_LOG": "opsboard=info", **(env or {})})
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None

    def key(self):
        return subprocess.check_output(self.args("apikey", "create", "--tenant", "acme", "--scope", "ingest,read",
                                                 "--expires", "1d"), text=True).strip()


def bodies(binary, hosts, steps, start, count):
    """`count` NDJSON bodies of hosts x steps rows each, consecutive in time from `start`."""
    out = subprocess.check_output([binary, "generate", "tsbs-cpu", "--hosts", str(hosts), "--start", start,
                                   "--duration", f"{steps * count * 10}s", "--interval", "10s", "--out", "-"])
    lines = out.splitlines(keepends=True)
    per = hosts * steps
    return [b"".join(lines[i * per:(i + 1) * per]) for i in range(count)]


class Sampler(threading.Thread):
    def __init__(self, server, key):
        super().__init__(daemon=True)
        self.server, self.key = server, key
        self.samples, self.stopped = [], threading.Event()

    def run(self):
        began = time.time()
        while not self.stopped.is_set():
            rss = self.server.rss()
            try:
                _, text = request(self.server.port, "GET", "/healthz", self.key, timeout=5)
                consumers = json.loads(text)["memory"]["consumers"]
                used = {k: v["used"] for k, v in consumers.items()}
            except (OSError, ValueError, KeyError):
                used = {}
            if rss:
                self.samples.append((time.time() - began, rss, used))
            time.sleep(0.1)

    def peak_mb(self):
        return round(max(s[1] for s in self.samples) / 2 ** 20) if self.samples else None


def ingest(a, budget):
    root = tempfile.mkdtemp(prefix="opsboard-memory-")
    server = Server(a.binary, root, f"memory:\n  budget: {budget}\n")
    key = server.key()
    server.start(env=a.env)
    pool = bodies(a.binary, 500, 10, "2024-01-01T00:00:00Z", a.bodies)
    sampler = Sampler(server, key)
    sampler.start()
    acked, pushed_back, errors, stop = [0] * 4, [0] * 4, [], threading.Event()

    def writer(w):
        i = w
        while not stop.is_set():
            body = pool[i % len(pool)]
            status, text = request(server.port, "POST", "/api/v1/tenants/acme/write/cpu", key, body,
                                   "application/x-ndjson")
            if 200 <= status < 300:
                acked[w] += 5000
                i += 4
            elif status == 503:
                pushed_back[w] += 1
                time.sleep(0.05)
            else:
                errors.append((status, text[:200]))
                return

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    began = time.time()
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.time() - began
    time.sleep(3)
    idle_rss = server.rss()
    sampler.stopped.set()
    sampler.join()
    status, text = request(server.port, "POST", "/api/v1/tenants/acme/query", key,
                           json.dumps({"sql": "SELECT count(*) AS n FROM cpu"}).encode(), "application/json")
    stored = json.loads(text)[0]["n"] if status == 200 else None
    server.stop()
    if a.timeline:
        with open(a.timeline, "a") as f:
            for t, rss, used in sampler.samples:
                f.write(json.dumps({"budget": budget, "t": round(t, 1), "rss_mib": rss >> 20,
                                    **{k: v >> 20 for k, v in used.items()}}) + "\n")
    return {
        "budget_mib": budget >> 20, "rows_per_s": round(sum(acked) / elapsed), "acked_rows": sum(acked),
        "stored_rows": stored, "pushed_back": sum(pushed_back), "errors": errors[:3],
        "peak_rss_mib": sampler.peak_mb(), "rss_3s_after_mib": round((idle_rss or 0) / 2 ** 20),
        "peak_buffers_mib": round(max((s[2].get("write_buffers", 0) for s in sampler.samples), default=0) / 2 ** 20),
    }


def compaction(a):
    """One UTC day generated as many small files (server stopped), then a server compacts it."""
    root = tempfile.mkdtemp(prefix="opsboard-compact-")
    config = ("storage:\n  flush_max_rows: 100000\n  maintenance_interval: 1s\n"
              "  compaction_min_files: 4\n  compaction_target_rows: 10000000\n  delete_grace: 1s\n")
    server = Server(a.binary, root, config)
    generated = subprocess.run(server.args("generate", "tsbs-cpu", "--hosts", "400", "--duration", "1d",
                                           "--tenant", "acme"), capture_output=True, text=True, check=True)
    day = f"{root}/data/objects/acme/cpu/2024-01-01"
    files_before = len(os.listdir(day))
    key = server.key()
    server.start(env=a.env)
    base = server.rss()
    sampler = Sampler(server, key)
    sampler.start()
    began = time.time()
    while len(os.listdir(day)) != 1 and time.time() - began < 600:
        time.sleep(0.1)
    took = time.time() - began
    sampler.stopped.set()
    sampler.join()
    status, text = request(server.port, "POST", "/api/v1/tenants/acme/query", key,
                           json.dumps({"sql": "SELECT count(*) AS n FROM cpu"}).encode(), "application/json")
    server.stop()
    return {"rows": json.loads(text)[0]["n"] if status == 200 else None, "files_before": files_before,
            "seconds": round(took, 1), "rss_at_start_mib": round(base / 2 ** 20),
            "peak_rss_mib": sampler.peak_mb(), "generated": generated.stdout.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/opsboard")
    ap.add_argument("--budget", type=int, action="append", help="memory.budget in bytes (repeatable)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bodies", type=int, default=60, help="distinct bodies the writers cycle through")
    ap.add_argument("--timeline", help="append every sample (MiB) to this file as JSON lines")
    ap.add_argument("--skip-compaction", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (allocator knobs)")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    a.env = dict(e.split("=", 1) for e in a.env)
    report = {"ingest": []}
    for budget in a.budget or [256 << 20, 1 << 30, 4 << 30]:
        report["ingest"].append(ingest(a, budget))
        print(json.dumps(report["ingest"][-1]), flush=True)
    if not a.skip_compaction:
        report["compaction"] = compaction(a)
        print(json.dumps(report["compaction"]), flush=True)
    return 0 if all(not r["errors"] and r["stored_rows"] == r["acked_rows"] for r in report["ingest"]) else 1


if __name__ == "__main__":
    sys.exit(main())
