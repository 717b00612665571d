"""Collector throughput on single-event beacons, side by side with nginx.

What it measures (goal: single-event beacons with a durable acknowledgement on 2 cores at
>= 50 % of nginx's requests/s in the same run):

- the anchor: nginx (2 worker processes) answering ``POST /e`` with 204 and writing a
  buffered access log, started from a config generated in a temporary folder;
- the collector: ``clickthru serve --workers N`` on a fresh SQLite store (WAL,
  synchronous=FULL), which answers 200 only after the event is committed;

both loaded by the same wrk Lua script, which POSTs one event per request exactly as a
browser's ``navigator.sendBeacon`` does (``Content-Type: text/plain;charset=UTF-8``,
``Origin``, a browser's User-Agent and fetch metadata), every event with a unique id.

It prints requests/s (2xx answers only), p50 and p99 latency, the ratio to nginx, and
where the CPU went (server process tree, wrk, whole machine), then checks honesty: the
non-2xx answers wrk saw, and that the collector's ``events`` table holds at least as many
rows as wrk saw 2xx answers.

Run (needs nginx and wrk on PATH; load goes to 127.0.0.1 only)::

    .venv/bin/python bench/collector_vs_nginx.py
    .venv/bin/python bench/collector_vs_nginx.py --workers 2 --duration 20
    .venv/bin/python bench/collector_vs_nginx.py --server-cpus 0 --wrk-cpus 1 --workers 1
    .venv/bin/python bench/collector_vs_nginx.py --servers uvicorn granian  # the server choice
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BROWSER_HEADERS,
    SERVERS,
    SITE_ORIGIN,
    SystemCpu,
    cli_token,
    collector,
    count_rows,
    free_port,
    parse_cpus,
    pin,
    register_site,
    start,
    stop,
    tree_cpu,
    wait_http,
)

NGINX_CONF = """\
{user}worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    access_log {tmp}/access.log combined buffer=64k;
    # uvicorn never closes a keep-alive connection; nginx's default closes one every
    # 1000 requests, which would make the anchor pay reconnects the collector does not.
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /e {{ return 204; }}
        location / {{ return 404; }}
    }}
}}
"""

# One wrk Lua script for both servers. setup() numbers the threads; each thread builds
# its own ids (run prefix, thread number, counter), counts 2xx and other answers, and
# done() prints one machine-readable line.
WRK_LUA = """\
local token = "{token}"
local prefix = "{prefix}"
local origin = "{origin}"
local extra = {{ {extra} }}
local threads = {{}}
local counter = 0
local ts = "0"
tid = 0
ok = 0
bad = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   ts = os.time() .. "000"
   wrk.method = "POST"
   wrk.path = "/e"
   wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
   wrk.headers["Origin"] = origin
   for name, value in pairs(extra) do
      wrk.headers[name] = value
   end
end

function request()
   counter = counter + 1
   local body = '{{"id":"' .. prefix .. tid .. "-" .. counter
      .. '","kind":"click","token":"' .. token .. '","ts":' .. ts
      .. ',"page":"' .. origin .. '/book/x","dest":"' .. origin
      .. '/book/y","via":"beacon"}}'
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local all_ok, all_bad = 0, 0
   for _, thread in ipairs(threads) do
      all_ok = all_ok + thread:get("ok")
      all_bad = all_bad + thread:get("bad")
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d ok=%d bad=%d connect=%d read=%d write=%d"
      .. " status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\\n",
      summary.requests, summary.duration, all_ok, all_bad, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    duration: int
    timeout: int
    cpus: set[int] | None


@dataclass(frozen=True)
class Result:
    name: str
    figures: dict[str, int]
    server_cores: float
    wrk_cores: float
    machine_busy: float
    wrk_output: str

    @property
    def seconds(self) -> float:
        return self.figures["duration_us"] / 1e6

    @property
    def ok_per_s(self) -> float:
        return self.figures["ok"] / self.seconds

    @property
    def errors(self) -> int:
        f = self.figures
        return f["connect"] + f["read"] + f["write"] + f["timeout"]


def write_lua(tmp: Path, token: str, browser_headers: bool) -> Path:
    def lua_string(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    headers = BROWSER_HEADERS if browser_headers else {}
    extra = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    script = tmp / f"beacon-{secrets.token_hex(3)}.lua"
    prefix = "b" + secrets.token_hex(4) + "-"
    script.write_text(WRK_LUA.format(token=token, prefix=prefix, origin=SITE_ORIGIN, extra=extra))
    return script


def run_wrk(name: str, port: int, script: Path, load: Load, server: int) -> Result:
    """Load 127.0.0.1:port with wrk; CPU of the server tree, of wrk, of the machine."""
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.duration}s",
        f"--timeout={load.timeout}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/e",
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, machine_before = tree_cpu(server), SystemCpu.now()
    started = time.monotonic()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=load.duration + load.timeout + 30,
        check=False,
        preexec_fn=pin(load.cpus),
    )
    wall = time.monotonic() - started
    server_after, machine_after = tree_cpu(server), SystemCpu.now()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    found = re.search(r"^BENCH (.*)$", done.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no BENCH line in wrk's output:\n{done.stdout}\n{done.stderr}")
    figures = {k: int(v) for k, v in (pair.split("=") for pair in found[1].split())}
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    return Result(
        name,
        figures,
        (server_after - server_before) / wall,
        wrk_cpu / wall,
        machine_after.since(machine_before),
        done.stdout,
    )


def bench_nginx(tmp: Path, port: int, script: Path, load: Load, cpus: set[int] | None) -> Result:
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port))
    argv = ["nginx", "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]
    argv += ["-g", "daemon off;"]
    proc = start(argv, tmp / "nginx.out", cpus=cpus)
    try:
        wait_http(f"http://127.0.0.1:{port}/e", 15, proc)
        result = run_wrk("nginx", port, script, load, proc.pid)
    finally:
        stop(proc)
    return result


def bench_collector(
    tmp: Path,
    workers: int,
    load: Load,
    browser_headers: bool,
    cpus: set[int] | None,
    server: str = "uvicorn",
) -> tuple[Result, int, int]:
    """Result, rows in ``events`` and rows in ``rejects`` after the collector stopped."""
    name = f"{'collector' if server == 'uvicorn' else server} w={workers}"
    store = tmp / f"bench-{server}-w{workers}.db"
    register_site(store)
    script = write_lua(tmp, cli_token(store), browser_headers)
    port = free_port()
    log = tmp / f"{server}-w{workers}.log"
    with collector(store, port, workers, log, cpus=cpus, server=server) as proc:
        result = run_wrk(name, port, script, load, proc.pid)
    return result, count_rows(store, "events"), count_rows(store, "rejects")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="collector worker counts to run, one row each",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=["uvicorn"],
        help="ASGI servers to run the collector under (granian: pip install granian)",
    )
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("-c", "--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("-d", "--duration", type=int, default=10, help="seconds per server")
    parser.add_argument("--timeout", type=int, default=2, help="wrk's request timeout, s")
    parser.add_argument(
        "--minimal-headers",
        action="store_true",
        help="send only Content-Type and Origin (no User-Agent, Referer, Sec-Fetch-*)",
    )
    parser.add_argument("--server-cpus", help="pin nginx and the collector, e.g. 0")
    parser.add_argument("--wrk-cpus", help="pin wrk, e.g. 1")
    parser.add_argument("--no-nginx", action="store_true", help="skip the anchor")
    parser.add_argument("--tmpdir", help="where the temporary folder goes (a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="print wrk's output")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (apt-get install -y {tool})")

    load = Load(
        args.threads, args.connections, args.duration, args.timeout, parse_cpus(args.wrk_cpus)
    )
    server_cpus = parse_cpus(args.server_cpus)
    tmp = Path(tempfile.mkdtemp(prefix="clickthru-bench-", dir=args.tmpdir))
    print(
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration}s, one event per request,"
        f" {'minimal' if args.minimal_headers else 'browser'} headers;"
        f" {os.cpu_count()} CPUs; server CPUs {args.server_cpus or 'any'},"
        f" wrk CPUs {args.wrk_cpus or 'any'}; in {tmp}",
        flush=True,
    )
    results: list[Result] = []
    checks: list[str] = []
    ok = True
    try:
        if not args.no_nginx:
            # nginx ignores the body; a real token keeps the request the same size.
            register_site(tmp / "anchor.db")
            script = write_lua(tmp, cli_token(tmp / "anchor.db"), not args.minimal_headers)
            result = bench_nginx(tmp, free_port(), script, load, server_cpus)
            results.append(result)
            with contextlib.suppress(OSError):
                logged = (tmp / "access.log").read_bytes().count(b"\n")
                checks.append(
                    f"nginx: {result.figures['ok']} 2xx answers seen by wrk,"
                    f" {logged} lines in its access log"
                )
            print(f"  {result.name}: {result.ok_per_s:,.0f} req/s", flush=True)
        runs = [(server, workers) for server in args.servers for workers in args.workers]
        for server, workers in runs:
            result, rows, rejects = bench_collector(
                tmp, workers, load, not args.minimal_headers, server_cpus, server
            )
            results.append(result)
            good = rows >= result.figures["ok"] and rejects == 0
            ok = ok and good
            checks.append(
                f"{result.name}: {result.figures['ok']} 2xx answers seen by wrk,"
                f" {rows} rows in events, {rejects} in rejects"
                f" -> {'OK' if good else 'MISMATCH'} (rows >= 2xx answers)"
            )
            print(f"  {result.name}: {result.ok_per_s:,.0f} req/s", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    if args.verbose:
        for result in results:
            print(f"--- wrk output, {result.name}\n{result.wrk_output}")
    anchor = next((r for r in results if r.name == "nginx"), None)
    print()
    header = (
        f"{'server':<15} {'req/s':>9} {'p50':>8} {'p99':>8} {'vs nginx':>9}"
        f" {'non-2xx':>8} {'sock err':>8} {'srv cores':>9} {'wrk cores':>9} {'CPU busy':>8}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        ratio = f"{result.ok_per_s / anchor.ok_per_s:.1%}" if anchor else "-"
        f = result.figures
        print(
            f"{result.name:<15} {result.ok_per_s:>9,.0f} {f['p50_us'] / 1000:>6.2f}ms"
            f" {f['p99_us'] / 1000:>6.2f}ms {ratio:>9} {f['bad']:>8} {result.errors:>8}"
            f" {result.server_cores:>9.2f} {result.wrk_cores:>9.2f} {result.machine_busy:>8.0%}"
        )
        ok = ok and f["bad"] == 0
    print()
    print("req/s counts 2xx answers only; cores = CPU seconds / wall seconds (2 = both cores).")
    for line in checks:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
