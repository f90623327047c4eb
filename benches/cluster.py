#!/usr/bin/env python3
"""Several opsboard nodes on one S3 bucket (moto, from PyPI) and one PostgreSQL (a throwaway
cluster from /usr/lib/postgresql/15/bin). Not part of CI: the figures go in the issue note.

    cargo build --release --locked
    python3 benches/cluster.py throughput --binary target/release/opsboard
    python3 benches/cluster.py chaos --binary target/release/opsboard --minutes 10

`throughput`: write throughput and acknowledgement latency (p50/p99) of NDJSON writes
(100 rows each, several writers) for one node on local disk, one node on S3, and three nodes on
S3 (writers spread over them).

`dashboard`: a 20-panel dashboard (10 timeseries and 10 KPIs over TSBS cpu rows, 10-minute
buckets, one day) requested all at once: on the local file store, then on S3 with an empty
local cache (a new node), again on another range (cache warm, panel answers not cached), and
after a restart on the same data dir (cache warm, process cold).

`chaos`: three nodes, writers on each; every 30 s a random node is SIGKILLed, its data dir
wiped, and it is started again. At the end every acknowledged batch must be there exactly once
(lost: acknowledged and missing; duplicates: a batch with more rows than written), and the
longest time any writer went without an acknowledgement is reported.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
ROWS = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, seconds=30):
    for _ in range(seconds * 10):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


class Moto:
    def __init__(self, root):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, "moto")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def bucket(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request("PUT", f"/{name}")
        assert c.getresponse().status == 200
        return f"s3://{name}/bench"

    def env(self):
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}

    def stop(self):
        self.proc.kill()


class Postgres:
    def __init__(self, root):
        self.dir = f"{root}/pg"
        os.makedirs(self.dir)
        os.chmod(root, 0o755)  # initdb runs as postgres and must reach its folder
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_pg:
            subprocess.check_call(["chown", "-R", "postgres:postgres", self.dir])
        self.as_pg = as_pg
        subprocess.check_call(as_pg + [f"{PG_BIN}/initdb", "-D", f"{self.dir}/data", "-U", "postgres",
                                       "--auth=trust", "--no-sync"], stdout=subprocess.DEVNULL)
        self.port = free_port()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.check_call(as_pg + [f"{PG_BIN}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log",
                                       "-o", opts, "-w", "start"], stdout=subprocess.DEVNULL)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        subprocess.call(self.as_pg + [f"{PG_BIN}/pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "stop"],
                        stdout=subprocess.DEVNULL)


class Node:
    def __init__(self, binary, root, name, extra, env):
        self.binary, self.dir, self.extra, self.env = binary, f"{root}/{name}", extra, env
        self.port, self.proc = free_port(), None
        os.makedirs(f"{self.dir}/tenants/acme", exist_ok=True)

    def args(self, *more):
        return [self.binary, *more, "--data-dir", f"{self.dir}/data", "--tenants-dir", f"{self.dir}/tenants",
                *self.extra]

    def start(self):
        log = open(f"{self.dir}/server.log", "a")
        self.proc = subprocess.Popen(self.args("serve", "--listen", f"127.0.0.1:{self.port}"),
                                     stdout=subprocess.DEVNULL, stderr=log,
                                     env={**os.environ, **self.env, "OPSBOARD_LOG": "opsboard=warn"})
        wait_port(self.port, "opsboard", 60)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def request(port, method, path, key, body=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"authorization": f"Bearer {key}"}
    if body is not None:
        headers["content-type"] = "application/x-ndjson" if path.endswith("/write/events") else "application/json"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()


def batch_body(writer, batch):
    base = 1_700_000_000_000 + (writer * 10_000_000 + batch) * 1000  # ms, the default precision
    return "".join(json.dumps({"time": base + i, "writer": writer, "batch": batch, "v": i}) + "\n"
                   for i in range(ROWS)).encode()


class Writer(threading.Thread):
    def __init__(self, wid, nodes, key, stop):
        super().__init__(daemon=True)
        self.wid, self.nodes, self.key, self.stop = wid, nodes, key, stop
        self.acked, self.latencies, self.refused, self.longest_gap = [], [], 0, 0.0

    def run(self):
        batch, last_ack = 0, time.time()
        while not self.stop.is_set():
            node = self.nodes[self.wid % len(self.nodes)]
            started = time.time()
            try:
                status, _ = request(node.port, "POST", "/api/v1/tenants/acme/write/events", self.key,
                                    batch_body(self.wid, batch))
            except OSError:
                status = 0
            now = time.time()
            if status == 200:
                self.acked.append(batch)
                self.latencies.append(now - started)
                self.longest_gap = max(self.longest_gap, now - last_ack)
                last_ack = now
            else:
                self.refused += 1
                time.sleep(0.05)
            batch += 1


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def api_key(node, tenant="acme"):
    """A key made with the node's own settings (its --database-url)."""
    return subprocess.check_output(node.args("apikey", "create", "--tenant", tenant, "--scope", "ingest,read",
                                             "--expires", "1d"),
                                   env={**os.environ, **node.env}, text=True).strip()


def counted(node, key):
    sql = "SELECT writer, batch, count(*) AS n FROM events GROUP BY writer, batch"
    status, body = request(node.port, "POST", "/api/v1/tenants/acme/query", key,
                           json.dumps({"sql": sql}).encode(), timeout=120)
    assert status == 200, body
    return {(r["writer"], r["batch"]): r["n"] for r in json.loads(body)}


def cluster(a, root, name, count, on_s3, moto, pg):
    env = moto.env() if on_s3 else {}
    extra = ["--object-store", moto.bucket(name)] if on_s3 else []
    extra += ["--database-url", pg.url]
    nodes = [Node(os.path.abspath(a.binary), root, f"{name}-{i}", extra, env) for i in range(count)]
    for n in nodes:
        n.start()
    return nodes


def throughput(a):
    root = tempfile.mkdtemp(prefix="opsboard-cluster-")
    moto, pg = Moto(root), Postgres(root)
    try:
        for name, count, on_s3 in [("local-1", 1, False), ("s3-1", 1, True), ("s3-3", 3, True)]:
            nodes = cluster(a, root, name, count, on_s3, moto, pg)
            key = api_key(nodes[0])
            stop = threading.Event()
            writers = [Writer(i, nodes, key, stop) for i in range(a.writers)]
            for w in writers:
                w.start()
            time.sleep(a.seconds)
            stop.set()
            for w in writers:
                w.join()
            lat = [x for w in writers for x in w.latencies]
            rows = sum(len(w.acked) for w in writers) * ROWS
            print(f"{name:8} {count} node(s): {rows / a.seconds:9.0f} rows/s acknowledged, "
                  f"p50 {percentile(lat, 0.5) * 1000:6.1f} ms, p99 {percentile(lat, 0.99) * 1000:6.1f} ms, "
                  f"refused {sum(w.refused for w in writers)}", flush=True)
            for n in nodes:
                n.stop()
    finally:
        pg.stop()
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


FIELDS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
          "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]


def dashboard_tenant(tenants):
    t = f"{tenants}/bench"
    os.makedirs(f"{t}/panels", exist_ok=True)
    os.makedirs(f"{t}/dashboards", exist_ok=True)
    with open(f"{t}/tenant.yaml", "w") as f:
        f.write("tables:\n  cpu:\n    tags: [hostname, region, datacenter, rack, os, arch, team, service, "
                "service_version, service_environment]\n")
    entries = ""
    for field in FIELDS:
        with open(f"{t}/panels/ts_{field}.yaml", "w") as f:
            f.write(f"panel:\n  type: timeseries\n  title: {field}\n  data_source:\n    table: cpu\n"
                    f"    columns: {{value: {field}, series_label: hostname}}\n"
                    "  aggregation:\n    rules:\n      - {bucket: 10m}\n")
        with open(f"{t}/panels/kpi_{field}.yaml", "w") as f:
            f.write(f"panel:\n  type: kpi\n  title: {field}\n  data_source:\n    table: cpu\n"
                    f"    columns: {{value: {field}}}\n  aggregation: {{function: avg}}\n"
                    "  display:\n    show_delta: true\n")
        entries += f"    - id: ts_{field}\n    - id: kpi_{field}\n"
    with open(f"{t}/dashboards/default.yaml", "w") as f:
        f.write(f"dashboard:\n  name: Bench\n  panels:\n{entries}")


def dashboard_once(node, key, shift_minutes):
    start = time.strptime("2024-01-01T00:00:00", "%Y-%m-%dT%H:%M:%S")
    base = int(time.mktime(start)) - time.timezone
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + shift_minutes * 60))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 86400 + shift_minutes * 60))
    panels = [f"{kind}_{f}" for f in FIELDS for kind in ("ts", "kpi")]
    results = [None] * len(panels)

    def fetch(i, p):
        status, body = request(node.port, "GET", f"/api/v1/tenants/bench/panels/{p}/data?from={frm}&to={to}", key,
                               timeout=300)
        results[i] = (status, len(body))

    started = time.time()
    threads = [threading.Thread(target=fetch, args=(i, p)) for i, p in enumerate(panels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r[0] == 200 for r in results), results
    return (time.time() - started) * 1000


def dashboard(a):
    root = tempfile.mkdtemp(prefix="opsboard-dash-")
    moto, pg = Moto(root), Postgres(root)
    try:
        for name, on_s3 in [("local", False), ("s3", True)]:
            env = moto.env() if on_s3 else {}
            extra = ["--object-store", moto.bucket(f"dash-{name}")] if on_s3 else []
            extra += ["--database-url", pg.url]
            node = Node(os.path.abspath(a.binary), root, f"dash-{name}", extra, env)
            dashboard_tenant(f"{node.dir}/tenants")
            t = time.time()
            subprocess.check_call(node.args("generate", "tsbs-cpu", "--tenant", "bench", "--hosts", str(a.hosts),
                                            "--duration", "1d"), env={**os.environ, **env},
                                  stdout=subprocess.DEVNULL)
            loaded = time.time() - t
            if on_s3:
                # What a new node has: the bucket, an empty data dir.
                shutil.rmtree(f"{node.dir}/data/objects", ignore_errors=True)
            node.start()
            key = api_key(node, "bench")
            cold = dashboard_once(node, key, 0)
            warm = dashboard_once(node, key, 10)
            node.stop()
            node.start()
            restarted = dashboard_once(node, key, 20)
            node.stop()
            print(f"{name:5}: {a.hosts} hosts x 1 d loaded in {loaded:.1f} s; 20-panel dashboard: "
                  f"cold {cold:.0f} ms, another range {warm:.0f} ms, after a restart {restarted:.0f} ms",
                  flush=True)
    finally:
        pg.stop()
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


def chaos(a):
    root = tempfile.mkdtemp(prefix="opsboard-chaos-")
    moto, pg = Moto(root), Postgres(root)
    try:
        nodes = cluster(a, root, "chaos", 3, True, moto, pg)
        key = api_key(nodes[0])
        stop = threading.Event()
        writers = [Writer(i, nodes, key, stop) for i in range(a.writers)]
        for w in writers:
            w.start()
        began, kills = time.time(), 0
        while time.time() - began < a.minutes * 60:
            time.sleep(30)
            victim = random.choice(nodes)
            victim.kill()
            shutil.rmtree(f"{victim.dir}/data", ignore_errors=True)
            victim.start()
            kills += 1
            print(f"{time.time() - began:6.0f} s: killed and restarted {victim.dir}", flush=True)
        stop.set()
        for w in writers:
            w.join()
        # Long enough for the last killed node's stream to be adopted.
        time.sleep(30)
        seen = counted(nodes[0], key)
        acked = {(w.wid, b) for w in writers for b in w.acked}
        lost = [k for k in acked if k not in seen]
        dups = [k for k, n in seen.items() if n > ROWS]
        print(json.dumps({
            "minutes": a.minutes, "kills": kills, "acknowledged_batches": len(acked),
            "rows_acknowledged": len(acked) * ROWS, "lost": len(lost), "duplicated": len(dups),
            "refused_writes": sum(w.refused for w in writers),
            "longest_write_outage_s": round(max(w.longest_gap for w in writers), 2),
            "ack_p50_ms": round(percentile([x for w in writers for x in w.latencies], 0.5) * 1000, 1),
            "ack_p99_ms": round(percentile([x for w in writers for x in w.latencies], 0.99) * 1000, 1),
        }, indent=2), flush=True)
        for n in nodes:
            n.stop()
        sys.exit(1 if lost or dups else 0)
    finally:
        pg.stop()
        moto.stop()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["throughput", "dashboard", "chaos"])
    ap.add_argument("--hosts", type=int, default=100, help="dashboard: TSBS hosts")
    ap.add_argument("--binary", default="target/release/opsboard")
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=20, help="per throughput run")
    ap.add_argument("--minutes", type=float, default=10, help="chaos run length")
    ap.add_argument("--keep", action="store_true", help="keep the chaos run's folders")
    a = ap.parse_args()
    {"throughput": throughput, "dashboard": dashboard, "chaos": chaos}[a.mode](a)


if __name__ == "__main__":
    main()
