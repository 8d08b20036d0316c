#!/usr/bin/python3
"""Relay throughput and lag: events/s from the outbox to RabbitMQ and to SQS (fauxqs).

For each sink, in a fresh temporary directory (SQLite stores made by `db seed`):
1. backlog: BENCH_EVENTS_N writes (product creates and price changes through
   `pricing serve`, each committing its event), then one `pricing events relay --once`
   timed: events/s drained;
2. under the write mix: wrk with bench/mix.lua (BENCH_EVENTS_WRITE_PCT % of the
   requests, default 20, are PUT /products/{id}/price with If-Match, each committing one
   pricing.price.changed.v1; the rest GET /price) at BENCH_EVENTS_CONNS connections
   (default 4) for BENCH_EVENTS_SECONDS while `pricing events relay --port` runs;
   /metrics sampled every 0.25 s for the lag (age of the oldest waiting event);
   events/s published. Without wrk, a Python writer (creates and price changes) instead.
Brokers are started and stopped here (scripts/rabbitmq.sh, scripts/fauxqs.sh) on
loopback; a sink whose broker cannot start is reported as skipped.
Prints a Markdown section; appends it to BENCH_EVENTS_RESULTS when set.

Usage: bench/events.py PRICING_BIN   (make bench-events)
"""

import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from common import free_port  # noqa: E402

N = int(os.environ.get("BENCH_EVENTS_N", "2000"))
MIX_SECONDS = float(os.environ.get("BENCH_EVENTS_SECONDS", "10"))
WRITE_PCT = int(os.environ.get("BENCH_EVENTS_WRITE_PCT", "20"))
CONNS = int(os.environ.get("BENCH_EVENTS_CONNS", "4"))


def env_with(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "EVENT_")) and k not in ("PRICE_DB", "AUDIT_STORE",
                                                              "PRODUCT_STORE")}
    env["NODE_NO_WARNINGS"] = "1"
    env.update(extra)
    return env


class Site:
    def __init__(self, binary):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="pxbev")
        self.flags = ["--price-db", "sqlite:%s/prices.db" % self.dir,
                      "--audit-store", "sqlite:%s/audit.db" % self.dir,
                      "--product-store", "sqlite:%s/products.db" % self.dir,
                      "--config-store", "sqlite:%s/config.db" % self.dir]
        subprocess.run([binary, "db", "seed"] + self.flags, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=self.dir, timeout=60)
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "serve", "--port", str(self.port)] + self.flags,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.dir, env=env_with({}))
        for _ in range(200):
            try:
                self.call("GET", "/health")
                break
            except OSError:
                time.sleep(0.05)
        self.next = 0

    def store_flags(self):
        return self.flags[:2] + self.flags[4:]

    def wrk_mix(self, seconds):
        """bench/mix.lua for seconds; the PUTs that succeeded (one event each)."""
        env = dict(os.environ, BENCH_WRITE_PCT=str(WRITE_PCT), BENCH_USERS="1000")
        r = subprocess.run(["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % int(seconds), "--timeout",
                            "2s", "-s", str(REPO / "bench" / "mix.lua"),
                            "http://127.0.0.1:%d/price" % self.port], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=seconds + 60)
        line = next((x for x in r.stdout.splitlines() if x.startswith("BENCH ")), "")
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        return int(fields.get("put_ok", 0)), float(fields.get("rps", 0))

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if body is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def write(self):
        """One create and one price change: two events."""
        pid = "B-%06d" % self.next
        self.next += 1
        a = self.call("POST", "/products", {"productId": pid, "name": "n", "category": "c"})
        b = self.call("PUT", "/products/%s/price" % pid, {"amount": "1.00", "currency": "EUR"},
                      {"If-Match": '"1"'})
        return 2 if (a, b) == (201, 200) else 0

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("pricing_events_"):
            k, v = line.split()
            out[k] = float(v)
    return out


def bench_sink(binary, name, sink, extra_env):
    rows = []
    site = Site(binary)
    try:
        made = 0
        t0 = time.time()
        while made < N and time.time() - t0 < 300:
            made += site.write()
        write_s = time.time() - t0
        env = env_with(dict(extra_env, EVENT_SINK=sink))
        t0 = time.time()
        r = subprocess.run([binary, "events", "relay", "--once"] + site.store_flags(), env=env,
                           cwd=site.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=600)
        drain_s = time.time() - t0
        if r.returncode != 0:
            return ["| %s | relay failed: %s | | | |" % (name, r.stderr.strip()[-200:])]
        rows.append("| %s | backlog of %d events (written at %.0f events/s) | %.0f events/s | | |"
                    % (name, made, made / write_s, made / drain_s))
        # under the write mix
        port = free_port()
        relay = subprocess.Popen([binary, "events", "relay", "--port", str(port)] +
                                 site.store_flags(), env=dict(env, EVENT_POLL_MS="20"),
                                 cwd=site.dir, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        stop = threading.Event()
        written = [0]
        use_wrk = shutil.which("wrk") is not None
        mix_rps = [0.0]

        def writer():
            if use_wrk:
                written[0], mix_rps[0] = site.wrk_mix(MIX_SECONDS)
                return
            while not stop.is_set():
                written[0] += site.write()

        th = threading.Thread(target=writer)
        time.sleep(0.5)
        before = scrape(port).get("pricing_events_published_total", 0)
        th.start()
        lags = []
        t0 = time.time()
        while time.time() - t0 < MIX_SECONDS:
            lags.append(scrape(port).get("pricing_events_lag_seconds", 0) * 1000)
            time.sleep(0.25)
        stop.set()
        th.join(60)
        mix_s = time.time() - t0
        deadline = time.time() + 60
        while time.time() < deadline and scrape(port).get("pricing_events_waiting", 1) > 0:
            time.sleep(0.1)
        published = scrape(port).get("pricing_events_published_total", 0) - before
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
        how = ("bench/mix.lua %d %% PUT, c=%d, %.0f req/s" % (WRITE_PCT, CONNS, mix_rps[0])
               if use_wrk else "Python writer")
        rows.append("| %s | write mix (%s), %.0f s, %d events written | %.0f events/s | %.0f | %.0f |"
                    % (name, how, mix_s, written[0], published / mix_s, statistics.median(lags),
                       max(lags)))
    finally:
        site.close()
    return rows


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = str(Path(sys.argv[1]).resolve())
    rows = []
    skipped = []
    load0 = "%.2f %.2f %.2f" % os.getloadavg()
    rdir = tempfile.mkdtemp(prefix="pxbrmq", dir="/tmp")
    r = subprocess.run([str(REPO / "scripts" / "rabbitmq.sh"), "start", rdir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    try:
        if r.returncode == 0:
            rows += bench_sink(binary, "RabbitMQ (confirms, persistent)",
                               r.stdout.strip() + "?exchange=pricing.bench", {})
        else:
            skipped.append("RabbitMQ: " + r.stderr.strip()[-200:])
    finally:
        subprocess.run([str(REPO / "scripts" / "rabbitmq.sh"), "stop", rdir], timeout=120)
        shutil.rmtree(rdir, ignore_errors=True)
    fdir = tempfile.mkdtemp(prefix="pxbfq")
    r = subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "start", fdir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    try:
        if r.returncode == 0:
            aws = {"AWS_ENDPOINT_URL": r.stdout.strip(), "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
            q = subprocess.run(["node", str(REPO / "tests" / "integration" / "sqs_tool.mjs"),
                                "create-queue", "bench.fifo"], env=env_with(aws),
                               stdout=subprocess.PIPE, text=True, check=True, timeout=60).stdout
            rows += bench_sink(binary, "SQS FIFO (fauxqs)", "sqs:" + q.strip(), aws)
        else:
            skipped.append("SQS: " + r.stderr.strip()[-200:])
    finally:
        subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "stop", fdir], timeout=60)
        shutil.rmtree(fdir, ignore_errors=True)
    load = "%.2f %.2f %.2f" % os.getloadavg()
    text = ["## Event relay (bench/events.py)", "",
            "Load average at the start: %s, at the end: %s on %d cores (a shared machine: other builds and"
            " tests ran at the same time)." % (load0, load, os.cpu_count() or 0), "",
            "| sink | run | relay throughput | lag p50 ms | lag max ms |",
            "| --- | --- | --- | --- | --- |"] + rows
    text += [""] + ["Skipped: " + s for s in skipped]
    out = "\n".join(text) + "\n"
    print(out)
    dest = os.environ.get("BENCH_EVENTS_RESULTS")
    if dest:
        with open(dest, "a") as f:
            f.write("\n" + out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
