#!/usr/bin/env python3
"""Side-by-side benchmarks of tinybird-bff against what users would pick instead.

Every comparison runs in the same process tree on the same machine, in interleaved rounds
(A B A B ...), and is reported as medians and ratios: the machine is shared and noisy, so
absolute numbers mean little and ratios within one run mean a lot. Results go to
docs/benchmarks.md with the exact command. Nothing here asserts; `cargo test` never times.
"""
import argparse, base64, json, os, platform, re, shutil, signal, socket, statistics
import subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tinybird-bff")
WORKSPACE = "6a1c2f1e-bench-4000-8000-000000000001"
KEY = "p." + base64.urlsafe_b64encode(json.dumps({"u": WORKSPACE, "id": "bench"}).encode()).decode().rstrip("=") + ".YmVuY2gtc2lnbmF0dXJl"
# ~1 KB, shaped like a Tinybird pipe response.
STATIC = json.dumps({
    "meta": [{"name": "product_id", "type": "Int64"}, {"name": "product_name", "type": "String"},
             {"name": "units", "type": "Int64"}, {"name": "revenue", "type": "Float64"}, {"name": "org_id", "type": "String"}],
    "data": [{"product_id": str(i), "product_name": f"Product {i}", "units": str(100 - i), "revenue": 1234.5 - i, "org_id": "acme"} for i in range(7)],
    "rows": 7, "rows_before_limit_at_least": 7, "statistics": {"elapsed": 0.000412, "rows_read": 40000, "bytes_read": 296},
}, separators=(",", ":"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, env=None, **kw):
        p = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def users_toml():
    text = open(os.path.join(ROOT, "demo", "users.toml")).read()
    return text


def bff_config(tmp, name, listen, upstream, store):
    session = f'store = "file"\ndir = "{tmp}/sessions-{name}"' if store == "file" else 'store = "memory"'
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""listen = "127.0.0.1:{listen}"
public_url = "http://127.0.0.1:{listen}"
[tinybird]
host = "http://127.0.0.1:{upstream}"
pipes = ["top_products", "sales_by_day", "recent_orders"]
[token]
ttl = "10m"
rps = 20
[session]
{session}
[users]
file = "users.toml"
[[grants]]
name = "tenant-dashboards"
pipes = ["top_products", "sales_by_day", "recent_orders"]
[grants.match]
roles = ["viewer", "admin"]
[grants.fixed_params]
org_id = "{{{{ user.tenant }}}}"
""")
    return path


def login(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/login", method="POST",
                                 data=json.dumps({"username": "alice", "password": "alice-demo"}).encode(),
                                 headers={"content-type": "application/json", "x-bff-csrf": "1"})
    with urllib.request.urlopen(req) as r:
        cookie = r.headers["set-cookie"].split(";")[0]
    return cookie


def nginx_conf(tmp, proxy_port, static_port):
    conf = os.path.join(tmp, "nginx.conf")
    body = STATIC.replace("'", "\\'")
    with open(conf, "w") as f:
        f.write(f"""worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
user root;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  upstream tinybird {{ server 127.0.0.1:{static_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location / {{
      proxy_pass http://tinybird;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen 127.0.0.1:{static_port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
""")
    return conf


# Everything from this heading on in docs/benchmarks.md is written by hand and kept by re-runs.
NOTES_HEADING = "## Notes (written by hand; bench/run keeps this section)"

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url, conns, duration, script, cookie="", threads=1, env=None):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s", "-s", script, url],
                         env={**os.environ, "BENCH_COOKIE": cookie, **(env or {})}, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = sum(int(x) for x in errors.groups()) if errors else 0
    return {"rps": rps, "p50": float(p50.group(1)) * UNITS[p50.group(2)], "p99": float(p99.group(1)) * UNITS[p99.group(2)],
            "errors": err + (int(non2xx.group(1)) if non2xx else 0)}


def rounds(targets, rounds_n, duration, conns, threads=1):
    """Interleaves targets (A B A B ...) and returns per-target lists of results."""
    results = {name: [] for name, *_ in targets}
    for r in range(rounds_n):
        for name, url, script, cookie, *env in targets:
            res = wrk(url, conns, duration, script, cookie, threads, env[0] if env else None)
            results[name].append(res)
            print(f"  round {r + 1} {name:<22} c={conns:<5} {res['rps']:>10.0f} req/s  p50 {res['p50']:.2f} ms  p99 {res['p99']:.2f} ms  errors {res['errors']}", flush=True)
    return results


def med(results, key):
    return statistics.median(r[key] for r in results)


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 round: checks the harness, numbers meaningless")
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    tmp = tempfile.mkdtemp(prefix="tbff-bench-")
    shutil.copy(os.path.join(ROOT, "demo", "users.toml"), os.path.join(tmp, "users.toml"))
    procs = Procs()
    env = {"TINYBIRD_SIGNING_KEY": KEY, "TINYBIRD_WORKSPACE_ID": WORKSPACE, "RUST_LOG": "warn"}
    try:
        static_port, nginx_port = free_port(), free_port()
        procs.start(["nginx", "-c", nginx_conf(tmp, nginx_port, static_port), "-p", tmp, "-g", "daemon off;"])
        wait_port(static_port); wait_port(nginx_port)
        ports = {}
        bff_procs = {}
        for name, store in [("bff-memory", "memory"), ("bff-file", "file")]:
            ports[name] = free_port()
            bff_procs[name] = procs.start([BIN, "serve", "--config", bff_config(tmp, name, ports[name], static_port, store)], env=env, cwd=tmp)
        local_port = free_port()
        procs.start([BIN, "local", "--listen", f"127.0.0.1:{local_port}"], env=env, cwd=tmp)
        ports["node"] = free_port()
        procs.start(["node", os.path.join(ROOT, "bench", "node-token", "server.mjs"), str(ports["node"])], env=env)
        for p in [*ports.values(), local_port]:
            wait_port(p, timeout=60)
        cookies = {name: login(ports[name]) for name in ("bff-memory", "bff-file")}
        cookies["node"] = "sid=bench-session"
        post, get = os.path.join(ROOT, "bench", "post.lua"), os.path.join(ROOT, "bench", "get.lua")
        token = lambda n: (n, f"http://127.0.0.1:{ports[n]}/api/token", post, cookies[n])
        proxy_path = "/v0/pipes/top_products.json?limit=10&org_id=globex"
        bff_proxy = ("bff-proxy", f"http://127.0.0.1:{ports['bff-memory']}/api/pipes/top_products.json?limit=10&org_id=globex", get, cookies["bff-memory"])
        nginx_proxy = ("nginx-proxy_pass", f"http://127.0.0.1:{nginx_port}{proxy_path}", get, "")
        direct = ("upstream-direct", f"http://127.0.0.1:{static_port}{proxy_path}", get, "")
        cores = os.cpu_count()
        print(f"machine: {cores} cores; {args.rounds} interleaved rounds of {args.duration} s each", flush=True)

        print("1. token endpoint (1 thread, 32 connections)", flush=True)
        tok = rounds([token("bff-memory"), token("bff-file"), token("node")], args.rounds, args.duration, 32)
        print("1b. the ceiling: a route that does nothing (GET /healthz) on each server", flush=True)
        ceiling = rounds([("bff-healthz", f"http://127.0.0.1:{ports['bff-memory']}/healthz", get, ""),
                          ("node-healthz", f"http://127.0.0.1:{ports['node']}/healthz", get, "")], args.rounds, args.duration, 32)
        print("2. proxy (1 thread, 32 connections)", flush=True)
        prx = rounds([bff_proxy, nginx_proxy, direct], args.rounds, args.duration, 32)
        print("3. memory under 1,000 keep-alive connections on the proxy", flush=True)
        pid = bff_procs["bff-memory"].pid
        idle = rss_kb(pid, "VmRSS")
        mem_run = wrk(bff_proxy[1], 1000, args.duration, get, cookies["bff-memory"], threads=2)
        peak = rss_kb(pid, "VmHWM")
        print(f"  idle {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB, {mem_run['rps']:.0f} req/s, errors {mem_run['errors']}", flush=True)
        print("4. scaling", flush=True)
        scaling = {}
        for conns in (32, 256, 1024):
            threads = 1 if conns == 32 else 2
            scaling[("token", conns)] = rounds([token("bff-memory"), token("node")], 1, args.duration, conns, threads)
            scaling[("proxy", conns)] = rounds([bff_proxy, nginx_proxy], 1, args.duration, conns, threads)
        print("5. the local endpoint's ClickHouse SQL: a new text per call (parsed and translated) vs a repeated one", flush=True)
        sql_script = os.path.join(ROOT, "bench", "sql.lua")
        sql_url = f"http://127.0.0.1:{local_port}/v0/sql"
        local = rounds([("sql-repeated-text", sql_url, sql_script, "", {"BENCH_TOKEN": KEY}),
                        ("sql-new-text", sql_url, sql_script, "", {"BENCH_TOKEN": KEY, "BENCH_FRESH": "1"})], args.rounds, args.duration, 8)
    finally:
        procs.stop_all()
    write_report(args, cores, tok, ceiling, prx, idle, peak, mem_run, scaling, local)


def write_report(args, cores, tok, ceiling, prx, idle, peak, mem_run, scaling, local):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem_total = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0) / 1024 / 1024
    cmd = "bench/run" + ("" if (args.duration, args.rounds) == (10, 3) else f" --duration {args.duration} --rounds {args.rounds}")
    m = lambda res, k: med(res, k)
    lines = [
        "# Benchmarks",
        "",
        f"Measured with `{cmd}` on {time.strftime('%Y-%m-%d')}: {cores} cores ({cpu}), {mem_total:.0f} GiB, "
        f"wrk, the BFF, its competitors and their upstream all on this one machine. Each row is the median of "
        f"{args.rounds} interleaved {args.duration} s rounds (A B C A B C ...). Ratios are what to read: the "
        "machines are shared and noisy, so absolute numbers move between runs.",
        "",
        "## 1. Token endpoint: `POST /api/token` vs a Node.js `node:http` + `jose` route",
        "",
        "Logged-in session, 3 pipes with fixed params, 1 thread, 32 connections. The Node server looks the",
        "session up in a `Map` and signs the same claims with `SignJWT` (`bench/node-token/server.mjs`).",
        "",
        "| target | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, res in tok.items():
        lines.append(f"| {name} | {m(res, 'rps'):.0f} | {m(res, 'p50'):.2f} | {m(res, 'p99'):.2f} | {sum(r['errors'] for r in res)} |")
    bm, bf, nd = tok["bff-memory"], tok["bff-file"], tok["node"]
    lines += [
        "",
        f"- BFF (memory sessions) / Node: **{m(bm, 'rps') / m(nd, 'rps'):.1f}x** the requests/s (target at least 5x); "
        f"p99 {m(bm, 'p99'):.2f} ms vs {m(nd, 'p99'):.2f} ms (target lower: {'met' if m(bm, 'p99') < m(nd, 'p99') else 'missed'}).",
        f"- BFF (file sessions) / Node: **{m(bf, 'rps') / m(nd, 'rps'):.1f}x**.",
        f"- File store / memory store: **{m(bf, 'rps') / m(bm, 'rps'):.2f}** of the throughput (target within 20%, i.e. at least 0.80).",
        "",
        "The ceiling: the same wrk settings on a route that does nothing (`GET /healthz`, no session, no",
        "signing) on each server, measured in the same run. No token route can beat its own server's no-op.",
        "",
        "| target | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, res in ceiling.items():
        lines.append(f"| {name} | {m(res, 'rps'):.0f} | {m(res, 'p50'):.2f} | {m(res, 'p99'):.2f} | {sum(r['errors'] for r in res)} |")
    bh, nh = ceiling["bff-healthz"], ceiling["node-healthz"]
    lines += [
        "",
        f"- The BFF's token route runs at **{m(bm, 'rps') / m(bh, 'rps'):.2f}** of its no-op ceiling (memory sessions; target at least 0.80), "
        f"{m(bf, 'rps') / m(bh, 'rps'):.2f} (file); Node's at {m(nd, 'rps') / m(nh, 'rps'):.2f} of its own ({m(nh, 'rps'):.0f} req/s).",
        "",
        "## 2. Proxy mode vs NGINX `proxy_pass`",
        "",
        "Same upstream for both: NGINX serving a static ~1 KB Tinybird-shaped JSON. NGINX: `worker_processes auto`,",
        "keep-alive upstream pool, access log off. The BFF also checks the session and the grant, rewrites the fixed",
        "param (`org_id=globex` in the URL becomes the user's `acme`) and signs the upstream request with a cached JWT.",
        "",
        "| target | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, res in prx.items():
        lines.append(f"| {name} | {m(res, 'rps'):.0f} | {m(res, 'p50'):.2f} | {m(res, 'p99'):.2f} | {sum(r['errors'] for r in res)} |")
    bp, ng, di = prx["bff-proxy"], prx["nginx-proxy_pass"], prx["upstream-direct"]
    lines += [
        "",
        f"- Throughput BFF / NGINX: **{m(bp, 'rps') / m(ng, 'rps'):.2f}** (target at least 1.00).",
        f"- p99 BFF - NGINX: **{m(bp, 'p99') - m(ng, 'p99'):+.2f} ms** (target at most +1 ms).",
        f"- Latency the BFF adds over calling the upstream directly: p50 {m(bp, 'p50') - m(di, 'p50'):+.2f} ms, p99 {m(bp, 'p99') - m(di, 'p99'):+.2f} ms.",
        "",
        "## 3. Memory",
        "",
        f"Peak RSS of the BFF (`VmHWM`) under 1,000 concurrent keep-alive connections on the proxy: **{peak / 1024:.1f} MB** "
        f"(target under 48 MB); idle RSS before the load {idle / 1024:.1f} MB; {mem_run['rps']:.0f} req/s, {mem_run['errors']} errors.",
        "",
        "## 4. Scaling with connections",
        "",
        "| pair | connections | BFF req/s | other req/s | ratio | BFF p99 ms | other p99 ms | errors (BFF/other) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (pair, conns), res in scaling.items():
        (an, a), (bn, b) = list(res.items())
        lines.append(f"| {pair} ({an} vs {bn}) | {conns} | {m(a, 'rps'):.0f} | {m(b, 'rps'):.0f} | {m(a, 'rps') / m(b, 'rps'):.2f} | "
                     f"{m(a, 'p99'):.2f} | {m(b, 'p99'):.2f} | {a[0]['errors']}/{b[0]['errors']} |")
    lines.append("")
    for conns in (256, 1024):
        (_, a), (_, b) = list(scaling[("proxy", conns)].items())
        lines.append(f"- Proxy at {conns} connections: BFF / NGINX **{m(a, 'rps') / m(b, 'rps'):.2f}** (target at least 0.90); "
                     f"p99 BFF - NGINX **{m(a, 'p99') - m(b, 'p99'):+.2f} ms** (target at most +1 ms).")
    rep, new = local["sql-repeated-text"], local["sql-new-text"]
    lines += [
        "",
        "## 5. The local endpoint's ClickHouse SQL",
        "",
        "`GET /v0/sql` on `tinybird-bff local` (the demo data, 40,000 orders) with the admin token, 8 connections: a",
        "ClickHouse query (`SELECT count(), uniq(product_id) ... WHERE org_id = 'acme' ... FORMAT JSON`) translated to SQLite and run.",
        "With a repeated text the translation is a cache hit; with a new text per call (one literal changes) every call",
        "parses and translates it again (`bench/sql.lua`).",
        "",
        "| target | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, res in local.items():
        lines.append(f"| {name} | {m(res, 'rps'):.0f} | {m(res, 'p50'):.2f} | {m(res, 'p99'):.2f} | {sum(r['errors'] for r in res)} |")
    lines += [
        "",
        f"- New text / repeated text: **{m(new, 'rps') / m(rep, 'rps'):.2f}** of the throughput: what parsing and translating costs "
        "a call that runs the query too.",
    ]
    lines += ["", "Micro-benchmarks of the hot functions: `cargo bench` (divan; `benches/hot_paths.rs`).", ""]
    # The hand-written part (what was changed, before/after) survives a re-run.
    kept = ""
    if os.path.exists(args.output):
        old = open(args.output).read()
        at = old.find(NOTES_HEADING)
        kept = old[at:] if at >= 0 else ""
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + ("\n" + kept if kept else ""))
    print("\n".join(lines))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
