#!/usr/bin/env python3
"""The TSBS cpu-only dashboard queries, side by side: opsboard over HTTP vs DuckDB, chDB and
PostgreSQL.

`opsboard generate tsbs-cpu` writes the same deterministic rows the issue describes (400 hosts
x 3 days x 10 s = 10,368,000 rows, 10 tags, 10 fields) into a tenant; a release server answers
Q1-Q7 over HTTP (Arrow IPC, the whole round trip timed); DuckDB and chDB (both from PyPI) run
the same questions on the very same Parquet files in this process; PostgreSQL 15 (a throwaway
cluster, the rows copied in, a btree on (hostname, time) and a BRIN on time, as a user would set
it up) answers over its local socket. Every answer is checked
against DuckDB's (row count and the sum of a value column, relative difference <= 1e-9), and
each median is printed with its ratio to the fastest peer. Not part of CI (figures go in the
issue note):

    pip install duckdb chdb "psycopg[binary]"   # PostgreSQL from /usr/lib/postgresql/15/bin
    cargo build --release --locked
    python3 benches/tsbs.py --binary target/release/opsboard
"""

import argparse
import glob
import shutil
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

END = "2024-01-04T00:00:00Z"
HOSTS8 = ", ".join(f"'host_{i}'" for i in (1, 3, 7, 42, 99, 150, 230, 399))
TAGS = ["hostname", "region", "datacenter", "rack", "os", "arch", "team", "service", "service_version",
        "service_environment"]
FIELDS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
          "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]


def window(hours):
    return f"time >= TIMESTAMP '{END}' - INTERVAL '{hours} hours' AND time < TIMESTAMP '{END}'"


# name -> (opsboard SQL, DuckDB SQL over `cpu`, chDB SQL over `cpu`, the column summed to check)
QUERIES = {
    "Q1 avg usage_user per host per 10 min, 24 h": (
        f"SELECT hostname, date_bin(INTERVAL '10 minutes', time) AS bucket, avg(usage_user) AS v "
        f"FROM cpu WHERE {window(24)} GROUP BY 1, 2",
        f"SELECT hostname, time_bucket(INTERVAL '10 minutes', time) AS bucket, avg(usage_user) AS v "
        f"FROM cpu WHERE {window(24)} GROUP BY 1, 2",
        "SELECT hostname, toStartOfInterval(time, INTERVAL 10 minute) AS bucket, avg(usage_user) AS v "
        "FROM cpu WHERE time >= toDateTime64('2024-01-03 00:00:00', 9, 'UTC') "
        "AND time < toDateTime64('2024-01-04 00:00:00', 9, 'UTC') GROUP BY 1, 2",
        "v"),
    "Q2 avg per 1 min, 6 h, 8 hosts": (
        f"SELECT hostname, date_bin(INTERVAL '1 minute', time) AS minute, avg(usage_user) AS v "
        f"FROM cpu WHERE hostname IN ({HOSTS8}) AND {window(6)} GROUP BY 1, 2",
        f"SELECT hostname, time_bucket(INTERVAL '1 minute', time) AS minute, avg(usage_user) AS v "
        f"FROM cpu WHERE hostname IN ({HOSTS8}) AND {window(6)} GROUP BY 1, 2",
        f"SELECT hostname, toStartOfMinute(time) AS minute, avg(usage_user) AS v FROM cpu "
        f"WHERE hostname IN ({HOSTS8}) AND time >= toDateTime64('2024-01-03 18:00:00', 9, 'UTC') "
        "AND time < toDateTime64('2024-01-04 00:00:00', 9, 'UTC') GROUP BY 1, 2",
        "v"),
    "Q3 avg of 10 fields per host per hour, 24 h": (
        "SELECT hostname, date_bin(INTERVAL '1 hour', time) AS hour, "
        + ", ".join(f"avg({f}) AS {f}" for f in FIELDS) + f" FROM cpu WHERE {window(24)} GROUP BY 1, 2",
        "SELECT hostname, time_bucket(INTERVAL '1 hour', time) AS hour, "
        + ", ".join(f"avg({f}) AS {f}" for f in FIELDS) + f" FROM cpu WHERE {window(24)} GROUP BY 1, 2",
        "SELECT hostname, toStartOfHour(time) AS hour, " + ", ".join(f"avg({f}) AS {f}" for f in FIELDS)
        + " FROM cpu WHERE time >= toDateTime64('2024-01-03 00:00:00', 9, 'UTC') "
        "AND time < toDateTime64('2024-01-04 00:00:00', 9, 'UTC') GROUP BY 1, 2",
        "usage_user"),
    "Q4 all columns where usage_user > 90, 12 h": (
        f"SELECT * FROM cpu WHERE usage_user > 90 AND {window(12)}",
        f"SELECT * FROM cpu WHERE usage_user > 90 AND {window(12)}",
        "SELECT * FROM cpu WHERE usage_user > 90 AND time >= toDateTime64('2024-01-03 12:00:00', 9, 'UTC') "
        "AND time < toDateTime64('2024-01-04 00:00:00', 9, 'UTC')",
        "usage_user"),
    "Q5 lastpoint: newest row per host": (
        "SELECT * FROM last_rows('cpu')",
        "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC",
        "SELECT * FROM cpu ORDER BY time DESC LIMIT 1 BY hostname",
        "usage_user"),
    "Q6 max per minute, 5 newest minutes before T": (
        "SELECT date_bin(INTERVAL '1 minute', time) AS minute, max(usage_user) AS v FROM cpu "
        "WHERE time < TIMESTAMP '2024-01-03T12:00:00Z' GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
        "SELECT time_bucket(INTERVAL '1 minute', time) AS minute, max(usage_user) AS v FROM cpu "
        "WHERE time < TIMESTAMP '2024-01-03T12:00:00Z' GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
        "SELECT toStartOfMinute(time) AS minute, max(usage_user) AS v FROM cpu "
        "WHERE time < toDateTime64('2024-01-03 12:00:00', 9, 'UTC') GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
        "v"),
    "Q7 KPI: avg over the last 5 minutes": (
        "SELECT avg(usage_user) AS v FROM cpu WHERE time >= TIMESTAMP '2024-01-03T23:55:00Z' "
        "AND time < TIMESTAMP '2024-01-04T00:00:00Z'",
        "SELECT avg(usage_user) AS v FROM cpu WHERE time >= TIMESTAMP '2024-01-03T23:55:00Z' "
        "AND time < TIMESTAMP '2024-01-04T00:00:00Z'",
        "SELECT avg(usage_user) AS v FROM cpu WHERE time >= toDateTime64('2024-01-03 23:55:00', 9, 'UTC') "
        "AND time < toDateTime64('2024-01-04 00:00:00', 9, 'UTC')",
        "v"),
}


# The same questions in PostgreSQL's dialect (None: as DuckDB's text).
PG_SQL = {
    "Q1 avg usage_user per host per 10 min, 24 h":
        "SELECT hostname, date_bin('10 minutes', time, TIMESTAMPTZ '2000-01-01') AS bucket, avg(usage_user) AS v "
        f"FROM cpu WHERE {window(24)} GROUP BY 1, 2",
    "Q2 avg per 1 min, 6 h, 8 hosts":
        "SELECT hostname, date_trunc('minute', time) AS minute, avg(usage_user) AS v "
        f"FROM cpu WHERE hostname IN ({HOSTS8}) AND {window(6)} GROUP BY 1, 2",
    "Q3 avg of 10 fields per host per hour, 24 h":
        "SELECT hostname, date_trunc('hour', time) AS hour, "
        + ", ".join(f"avg({f}) AS {f}" for f in FIELDS) + f" FROM cpu WHERE {window(24)} GROUP BY 1, 2",
    "Q6 max per minute, 5 newest minutes before T":
        "SELECT date_trunc('minute', time) AS minute, max(usage_user) AS v FROM cpu "
        "WHERE time < TIMESTAMPTZ '2024-01-03T12:00:00Z' GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
}


class Postgres:
    """A throwaway PostgreSQL 15 cluster holding the same rows (copied from the Parquet files)."""

    def __init__(self, root, duck):
        import psycopg
        bin_dir = "/usr/lib/postgresql/15/bin"
        self.data = f"{root}/pg"
        user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        os.makedirs(self.data)
        if user:
            subprocess.run(["chown", "-R", "postgres", root], check=True)
        subprocess.run([*user, f"{bin_dir}/initdb", "-D", self.data, "-A", "trust", "-U", "bench"],
                       check=True, capture_output=True)
        with socket_free() as port:
            self.port = port
        self.ctl = [*user, f"{bin_dir}/pg_ctl", "-D", self.data]
        subprocess.run([*self.ctl, "-l", f"{self.data}/log", "-w", "start", "-o",
                        f"-p {self.port} -k {self.data} -c listen_addresses='' -c shared_buffers=512MB "
                        "-c work_mem=64MB -c max_parallel_workers_per_gather=2 -c timezone=UTC"],
                       check=True, capture_output=True)
        self.conn = psycopg.connect(host=self.data, port=self.port, user="bench", dbname="postgres",
                                    autocommit=True)
        columns = duck.execute("DESCRIBE cpu").fetchall()
        types = {"VARCHAR": "text", "DOUBLE": "double precision", "TIMESTAMP WITH TIME ZONE": "timestamptz",
                 "BIGINT": "bigint"}
        ddl = ", ".join(f"{name} {types.get(kind, 'text')}" for name, kind, *_ in columns)
        self.conn.execute(f"CREATE TABLE cpu ({ddl})")
        csv_path = f"{root}/cpu.csv"
        duck.execute(f"COPY (SELECT * FROM cpu) TO '{csv_path}' (HEADER, DELIMITER ',')")
        t = time.perf_counter()
        with self.conn.cursor().copy("COPY cpu FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            with open(csv_path, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        os.remove(csv_path)
        self.conn.execute("CREATE INDEX ON cpu (hostname, time)")
        self.conn.execute("CREATE INDEX ON cpu USING brin (time)")
        self.conn.execute("VACUUM ANALYZE cpu")
        self.load_s = time.perf_counter() - t

    def run(self, sql):
        self.conn.execute("DROP TABLE IF EXISTS r")
        self.conn.execute(f"CREATE TEMP TABLE r AS {sql}")

    def answer(self, column):
        return self.conn.execute(f"SELECT count(*), coalesce(sum({column}), 0) FROM r").fetchone()

    def stop(self):
        self.conn.close()
        subprocess.run([*self.ctl, "-m", "immediate", "stop"], capture_output=True)


class socket_free:
    """A free TCP port number (PostgreSQL listens on a Unix socket only, but wants a port)."""

    def __enter__(self):
        import socket
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc):
        self.s.close()


def median_ms(run, repeat):
    run()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Opsboard:
    def __init__(self, binary, root):
        # Compaction leaves one file per day (as a server that ran a while would have it).
        with open(f"{root}/opsboard.yaml", "w") as f:
            f.write("storage:\n  maintenance_interval: 1s\n  delete_grace: 1s\n"
                    "  compaction_target_rows: 5000000\n  compaction_min_files: 2\n")
        self.args = ["--config", f"{root}/opsboard.yaml", "--data-dir", f"{root}/data",
                     "--tenants-dir", f"{root}/tenants"]
        self.binary = binary
        self.key = subprocess.check_output([binary, "apikey", "create", "--tenant", "bench", "--scope", "read",
                                            "--expires", "1d", *self.args], text=True).strip()
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.proc.stdout.readline().strip().rsplit(":", 1)[1])

    def query(self, sql, fmt):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", f"/api/v1/tenants/bench/query?format={fmt}", body=json.dumps({"sql": sql}),
                  headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{r.status}: {body[:300]!r}")
        return body

    def answer(self, sql, column):
        rows = json.loads(self.query(sql, "json"))
        return len(rows), sum(r[column] for r in rows if r.get(column) is not None)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def close(a, b):
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-9 * max(1.0, abs(a[1]), abs(b[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/opsboard")
    ap.add_argument("--hosts", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-rollups", action="store_true", help="raw rows only (no tenant.yaml rollups)")
    a = ap.parse_args()
    import duckdb
    try:
        import chdb
    except ImportError:
        chdb = None
    root = tempfile.mkdtemp(prefix="opsboard-tsbs-")
    os.makedirs(f"{root}/tenants/bench")
    if not a.no_rollups:
        # What an operator would declare for these dashboards: per-minute and hourly rollups per
        # host, and per minute over all hosts. Queries stay the same SQL; opsboard picks the
        # smallest rollup that answers each.
        with open(f"{root}/tenants/bench/tenant.yaml", "w") as f:
            f.write("tables:\n  cpu:\n    tags: [" + ", ".join(TAGS) + "]\n    fields: {"
                    + ", ".join(f"{x}: float" for x in FIELDS) + "}\n"
                    "    rollups: [{intervals: [1m, 1h], group_by: [hostname]}, {intervals: [1m]}]\n")
    binary = os.path.abspath(a.binary)
    subprocess.run([binary, "generate", "tsbs-cpu", "--hosts", str(a.hosts), "--duration", "3d", "--tenant", "bench",
                    "--data-dir", f"{root}/data", "--tenants-dir", f"{root}/tenants"],
                   check=True, capture_output=True)
    server = Opsboard(binary, root)
    pattern = f"{root}/data/objects/bench/cpu/*/*.parquet"
    deadline = time.time() + 300
    rollups = f"{root}/data/objects/bench/cpu/_rollups/*/*/*.parquet"
    want_rollups = 0 if a.no_rollups else 9
    while (len(glob.glob(pattern)) > 3 or len(glob.glob(rollups)) != want_rollups) \
            and time.time() < deadline:
        time.sleep(0.5)
    print(json.dumps({"ready_s": round(300 - (deadline - time.time()), 1),
                      "rollup_files": len(glob.glob(rollups))}), flush=True)
    time.sleep(2)
    files = sorted(glob.glob(pattern))
    duck = duckdb.connect()
    duck.execute("SET TimeZone = 'UTC'")
    duck.execute(f"CREATE VIEW cpu AS SELECT * REPLACE (time::TIMESTAMPTZ AS time) FROM read_parquet({files!r})")
    chdb_files = f"{root}/data/objects/bench/cpu/*/*.parquet"
    pg = None
    if not a.no_postgres:
        pg = Postgres(root, duck)
        print(json.dumps({"postgres_load_s": round(pg.load_s, 1)}), flush=True)
    report, ratios = [], []
    for name, (ours_sql, duck_sql, ch_sql, column) in QUERIES.items():
        ours_ms = median_ms(lambda: server.query(ours_sql, "arrow"), a.repeat)
        duck_ms = median_ms(lambda: duck.execute(f"CREATE OR REPLACE TEMP TABLE r AS {duck_sql}"), a.repeat)
        expected = duck.execute(f"SELECT count(*), coalesce(sum({column}), 0) FROM r").fetchone()
        got = server.answer(ours_sql, column)
        peers = {"duckdb": duck_ms}
        if chdb:
            ch = ch_sql.replace("FROM cpu", f"FROM file('{chdb_files}', Parquet)")
            peers["chdb"] = median_ms(lambda: chdb.query(ch, "Arrow"), a.repeat)
        same = close(got, expected)
        if pg:
            pg_sql = PG_SQL.get(name, duck_sql)
            peers["postgres"] = median_ms(lambda: pg.run(pg_sql), a.repeat)
            same = same and close(tuple(map(float, pg.answer(column))), expected)
        best = min(peers.values())
        ratios.append(ours_ms / best)
        line = {"query": name, "opsboard_ms": round(ours_ms, 2), **{k + "_ms": round(v, 2) for k, v in peers.items()},
                "ratio_to_best": round(ours_ms / best, 2), "same_answer": same,
                "rows": got[0]}
        print(json.dumps(line), flush=True)
        report.append(line)
    geomean = statistics.geometric_mean(ratios)
    print(json.dumps({"geomean_ratio": round(geomean, 2), "rows": 8640 * 3 * a.hosts, "files": len(files)}))
    server.stop()
    if pg:
        pg.stop()
    # The data dir, the Parquet files and the PostgreSQL cluster: several GB per run.
    shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r["same_answer"] for r in report) else 1


if __name__ == "__main__":
    sys.exit(main())
