#!/usr/bin/env python3
"""Attachment figures for issue 17's note: upload throughput of 200 KB JPEG-sized bodies
(MB/s and uploads/s, 8 clients at once, each body distinct so none is deduplicated), the time
to make a thumbnail of a 1920x1080 picture and to serve it once kept, the server-side render
of a gallery page of 200 events with attachments, how soon an event rule has judged 1,000 new
matching rows written among 10,000, and one collection of unreferenced attachments (the
server's own timing, from its log). Not part of CI:

    cargo build --release --locked
    python3 benches/attachments.py --binary target/release/opsboard
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import statistics
import struct
import subprocess
import tempfile
import time
import zlib


def png(width, height):
    """A gradient picture as a PNG (grayscale), made with zlib alone."""
    rows = b"".join(b"\0" + bytes((x * 255 // width + y) % 256 for x in range(width)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


class Server:
    def __init__(self, binary, root):
        os.makedirs(f"{root}/tenants/bench/panels")
        os.makedirs(f"{root}/tenants/bench/dashboards")
        with open(f"{root}/tenants/bench/dashboards/default.yaml", "w") as f:
            f.write("dashboard:\n  name: Events\n  panels:\n    - id: gallery\n")
        with open(f"{root}/tenants/bench/tenant.yaml", "w") as f:
            f.write("tables:\n  events:\n    tags: [camera]\n    fields: {kind: string, snapshot: attachment}\n")
        os.makedirs(f"{root}/tenants/bench/alerts")
        with open(f"{root}/tenants/bench/alerts/events.yaml", "w") as f:
            f.write("rules:\n  - name: person\n    event: {table: events, where: \"kind = 'person'\"}\n"
                    "    every: 1s\n    severity: low\n    message: \"person at {{ camera }}\"\n"
                    "channels:\n  - {name: inbox, type: in_app}\nroutes:\n  - {channels: [inbox]}\n")
        with open(f"{root}/opsboard.yaml", "w") as f:
            f.write("alerts: {tick: 100ms}\nstorage: {maintenance_interval: 1s}\n"
                    "attachments: {unreferenced_grace: 20s, collect_interval: 1s}\n")
        with open(f"{root}/tenants/bench/panels/gallery.yaml", "w") as f:
            f.write("panel:\n  type: table\n  title: Events\n  data_source:\n    table: events\n"
                    "    columns:\n      - {name: snapshot}\n      - {name: camera}\n      - {name: kind}\n"
                    "  display: {gallery: true, pagination: 200}\n")
        self.args = ["--config", f"{root}/opsboard.yaml", "--data-dir", f"{root}/data",
                     "--tenants-dir", f"{root}/tenants"]
        self.log = open(f"{root}/server.log", "w+")
        self.key = subprocess.check_output([binary, "apikey", "create", "--tenant", "bench", "--scope", "ingest,read",
                                            "--expires", "1d", *self.args], text=True).strip()
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", *self.args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "OPSBOARD_LOG": "opsboard=info"})
        self.port = int(self.proc.stdout.readline().strip().rsplit(":", 1)[1])

    def call(self, method, path, body=None, content_type=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.key}"}
        if content_type:
            headers["Content-Type"] = content_type
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return data

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/opsboard")
    ap.add_argument("--uploads", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsboard-attachments-") as root:
        server = Server(a.binary, root)
        try:
            size = 200 * 1024
            jpeg_head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
            bodies = [jpeg_head + os.urandom(size - len(jpeg_head)) for _ in range(a.uploads)]

            def one(body):
                server.call("POST", "/api/v1/tenants/bench/attachments", body, "image/jpeg")

            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
                list(pool.map(one, bodies))
            took = time.perf_counter() - start
            print(f"uploads: {a.uploads} x 200 KB with {a.clients} clients in {took:.2f} s: "
                  f"{a.uploads / took:.0f} uploads/s, {a.uploads * size / took / 1e6:.1f} MB/s")

            picture = png(1920, 1080)
            made, kept = [], []
            for i in range(5):
                # A different picture each round (one changed pixel row), so each is made anew.
                body = picture[:-40] + picture[-40:] if i == 0 else png(1920, 1080 - i)
                info = json.loads(server.call("POST", "/api/v1/tenants/bench/attachments", body, "image/png"))
                url = info["url"] + "?thumbnail=1"
                t = time.perf_counter()
                server.call("GET", url)
                made.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                server.call("GET", url)
                kept.append((time.perf_counter() - t) * 1000)
            print(f"thumbnail of 1920x1080 PNG ({len(picture) // 1024} KB): made in {statistics.median(made):.1f} ms "
                  f"(median of 5), served kept in {statistics.median(kept):.2f} ms")
            # A gallery of 200 events, each pointing at one of the uploads.
            ids = []
            for body in bodies[:200]:
                ids.append(json.loads(server.call("POST", "/api/v1/tenants/bench/attachments", body, "image/jpeg"))["id"])
            rows = "".join(json.dumps({"time": 1_700_000_000_000 + i, "camera": f"cam-{i % 8}", "kind": "person",
                                       "snapshot": ident}) + "\n" for i, ident in enumerate(ids))
            server.call("POST", "/api/v1/tenants/bench/write/events", rows.encode(), "application/x-ndjson")
            page = "/t/bench/p/gallery/fragment?from=2023-11-14T00:00:00Z&to=2023-11-16T00:00:00Z&page_size=200"
            times = []
            for _ in range(7):
                t = time.perf_counter()
                html = server.call("GET", page)
                times.append((time.perf_counter() - t) * 1000)
            shown = html.count(b"?thumbnail=1")
            print(f"gallery of {shown} events rendered server-side: {times[0]:.1f} ms first (query + HTML), "
                  f"{statistics.median(times[1:]):.1f} ms after (answer cached, HTML drawn; median of 6)")
            event_rule(server)
            collection(server, a.uploads - 200)
        finally:
            server.stop()


def event_rule(server):
    """1,000 person rows among 10,000 written at once (now): how soon all are judged."""
    # After the rule's first evaluation (rows before it are history), one row per camera and
    # millisecond (a series keeps one row per time).
    now = int(time.time() * 1000)
    rows = "".join(json.dumps({"time": now - 1_250 + i // 8, "camera": f"cam-{i % 8}",
                               "kind": "person" if i % 10 == 0 else "motion"}) + "\n" for i in range(10_000))
    start = time.perf_counter()
    server.call("POST", "/api/v1/tenants/bench/write/events", rows.encode(), "application/x-ndjson")
    sql = json.dumps({"sql": "SELECT count(*) AS n FROM alerts WHERE rule = 'person' AND state = 'event'"})
    n = 0
    while time.perf_counter() - start < 60:
        try:
            answer = server.call("POST", "/api/v1/tenants/bench/query", sql.encode(), "application/json")
            n = json.loads(answer)[0]["n"]
        except (RuntimeError, ValueError, KeyError, IndexError):
            n = 0  # before the first judged row there is no alerts table
        if n >= 1000:
            break
        time.sleep(0.05)
    print(f"event rule: {n} of 1,000 new matching rows (among 10,000) judged and sent in-app "
          f"{time.perf_counter() - start:.2f} s after the write (evaluated every 1 s)")


def collection(server, unreferenced):
    """The uploads no row names go once their grace is over: the server's timing of it."""
    deadline = time.time() + 90
    while time.time() < deadline:
        server.log.seek(0)
        lines = [l for l in server.log.read().splitlines() if "unreferenced attachments deleted" in l]
        if lines:
            time.sleep(3)
            server.log.seek(0)
            lines = [l for l in server.log.read().splitlines() if "unreferenced attachments deleted" in l]
            for line in lines:
                print(f"collection ({unreferenced} unreferenced uploads expected): {line.split('INFO', 1)[-1].strip()}")
            return
        time.sleep(1)
    print("collection: nothing deleted within 90 s")


if __name__ == "__main__":
    main()
