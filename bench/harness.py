#!/usr/bin/env python3
"""Side-by-side benchmarks of tinybird-bff against what users would pick instead.

Every comparison runs in the same process tree on the same machine, in interleaved rounds
(A B A B ...), and is reported as medians and ratios: the machine is shared and noisy, so
absolute numbers mean little and ratios within one run mean a lot. The competitors: NGINX
`proxy_pass`, a Node `node:http` + `jose` token route (bench/node-token) and a Node proxy with
a session map and an undici keep-alive pool (bench/node-proxy). With `--baseline PATH` a second
tinybird-bff binary runs the same BFF scenarios in the same rounds (before and after).
Results go to docs/benchmarks.md (bench/report.py) with the exact command, led by issue #26's
goals and their verdicts. Nothing here asserts; `cargo test` never times.
"""
import argparse, base64, json, os, re, shutil, signal, socket
import subprocess, tempfile, time, urllib.request

import report

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


def wait_port(port, timeout=20, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            log = open(proc.log).read()[-2000:] if getattr(proc, "log", None) else ""
            raise SystemExit(f"{' '.join(proc.args)} exited with {proc.returncode} before listening on {port}:\n{log}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


class Procs:
    def __init__(self, tmp):
        self.procs = []
        self.tmp = tmp

    def start(self, args, env=None, **kw):
        """Starts a server; its stderr goes to a log file that wait_port shows if it dies."""
        log = os.path.join(self.tmp, f"stderr-{len(self.procs)}-{os.path.basename(args[0])}.log")
        with open(log, "w") as err:
            p = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=err, **kw)
        p.log = log
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


def bff_config(tmp, name, listen, upstream, store, keys):
    # API keys for this build only (a baseline from before them would refuse the section).
    keys = f'[keys]\npath = "{tmp}/keys-{name}.db"\nroles = ["viewer"]' if keys else ""
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
{keys}
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


def create_key(port, cookie):
    """A key of acme for top_products, made by alice (its tenant admin) from her session."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/keys", method="POST",
                                 data=json.dumps({"name": "bench", "pipes": ["top_products"]}).encode(),
                                 headers={"content-type": "application/json", "x-bff-csrf": "1", "cookie": cookie})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["secret"]


def keys_vs_cookie(port, cookie, key, rounds_n, duration, api_path):
    """Section 6: the same routes with a cookie session and with an API key, interleaved."""
    post, get, key_lua = (os.path.join(ROOT, "bench", f) for f in ("post.lua", "get.lua", "key.lua"))
    base = f"http://127.0.0.1:{port}"
    return rounds([("token-cookie", f"{base}/api/token", post, cookie),
                   ("token-key", f"{base}/api/token", key_lua, "", {"BENCH_KEY": key, "BENCH_METHOD": "POST"}),
                   ("proxy-cookie", f"{base}{api_path}", get, cookie),
                   ("proxy-key", f"{base}{api_path}", key_lua, "", {"BENCH_KEY": key})],
                  rounds_n, duration, 32)


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


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Resets the process's peak RSS (VmHWM) to its current RSS, so each round measures its own."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def rss_rounds(builds, rounds_n, duration, get):
    """Peak RSS under 1,000 keep-alive proxy connections, each build in turn, per round."""
    results = {b["label"]: [] for b in builds}
    for r in range(rounds_n):
        for b in builds:
            pid = b["proc"].pid
            reset_peak(pid)
            before = rss_kb(pid, "VmRSS")
            run = wrk(b["proxy"][1], 1000, duration, get, b["cookie"], threads=2)
            res = {**run, "before": before, "peak": rss_kb(pid, "VmHWM")}
            results[b["label"]].append(res)
            print(f"  round {r + 1} {b['label']:<22} before {before / 1024:.1f} MB, peak {res['peak'] / 1024:.1f} MB, "
                  f"{run['rps']:.0f} req/s, errors {run['errors']}", flush=True)
    return results


def main():
    ap = argparse.ArgumentParser(description="Side-by-side benchmarks; writes docs/benchmarks.md.")
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds of the goal scenarios (default 6)")
    ap.add_argument("--baseline", metavar="PATH", help="a second tinybird-bff binary (e.g. built from main) run in the same "
                    "rounds through the same BFF scenarios (token, /healthz, proxy, RSS), reported side by side")
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 round: checks the harness, numbers meaningless")
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--only-keys", action="store_true", help="only section 6 (API key vs cookie session on the same "
                    "routes), printed; docs/benchmarks.md is left as it is")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    if args.baseline and not (os.path.isfile(args.baseline) and os.access(args.baseline, os.X_OK)):
        raise SystemExit(f"--baseline {args.baseline}: not an executable file (build one, e.g. `cargo build --release` in a "
                         "worktree of main, and pass its target/release/tinybird-bff)")
    tmp = tempfile.mkdtemp(prefix="tbff-bench-")
    shutil.copy(os.path.join(ROOT, "demo", "users.toml"), os.path.join(tmp, "users.toml"))
    procs = Procs(tmp)
    env = {"TINYBIRD_SIGNING_KEY": KEY, "TINYBIRD_WORKSPACE_ID": WORKSPACE, "RUST_LOG": "warn"}
    try:
        static_port, nginx_port = free_port(), free_port()
        ng = procs.start(["nginx", "-c", nginx_conf(tmp, nginx_port, static_port), "-p", tmp, "-g", "daemon off;"])
        wait_port(static_port, proc=ng); wait_port(nginx_port, proc=ng)
        # The BFF builds: this one (memory and file sessions) and, with --baseline, the other
        # (memory sessions), each started with the same config.
        builds = [{"label": "this build", "name": "bff", "bin": BIN}]
        if args.baseline:
            builds.append({"label": "baseline", "name": "baseline", "bin": os.path.abspath(args.baseline)})
        servers = [(b["bin"], f"{b['name']}-memory", "memory") for b in builds] + [(BIN, "bff-file", "file")]
        ports, started = {}, {}
        for binary, name, store in servers:
            ports[name] = free_port()
            started[name] = procs.start([binary, "serve", "--config", bff_config(tmp, name, ports[name], static_port, store, binary == BIN)], env=env, cwd=tmp)
        local_port = free_port()
        started["local"] = procs.start([BIN, "local", "--listen", f"127.0.0.1:{local_port}"], env=env, cwd=tmp)
        ports["node"], ports["node-proxy"] = free_port(), free_port()
        started["node"] = procs.start(["node", os.path.join(ROOT, "bench", "node-token", "server.mjs"), str(ports["node"])], env=env)
        started["node-proxy"] = procs.start(["node", os.path.join(ROOT, "bench", "node-proxy", "server.mjs"), str(ports["node-proxy"]),
                                             f"http://127.0.0.1:{static_port}"], env={**env, "TINYBIRD_TOKEN": KEY})
        for name, port in [*ports.items(), ("local", local_port)]:
            wait_port(port, timeout=60, proc=started[name])
        cookies = {name: login(ports[name]) for _, name, _ in servers}
        cookies["node"] = cookies["node-proxy"] = "sid=bench-session"
        post, get = os.path.join(ROOT, "bench", "post.lua"), os.path.join(ROOT, "bench", "get.lua")
        proxy_path = "/v0/pipes/top_products.json?limit=10&org_id=globex"
        api_path = "/api/pipes/top_products.json?limit=10&org_id=globex"
        token = lambda n: (n, f"http://127.0.0.1:{ports[n]}/api/token", post, cookies[n])
        for b in builds:
            mem = f"{b['name']}-memory"
            b.update(proc=started[mem], cookie=cookies[mem], token=token(mem),
                     healthz=(f"{b['name']}-healthz", f"http://127.0.0.1:{ports[mem]}/healthz", get, ""),
                     proxy=(f"{b['name']}-proxy", f"http://127.0.0.1:{ports[mem]}{api_path}", get, cookies[mem]))
        node_proxy = ("node-proxy", f"http://127.0.0.1:{ports['node-proxy']}{api_path}", get, cookies["node-proxy"])
        nginx_proxy = ("nginx-proxy_pass", f"http://127.0.0.1:{nginx_port}{proxy_path}", get, "")
        direct = ("upstream-direct", f"http://127.0.0.1:{static_port}{proxy_path}", get, "")
        this = builds[0]
        cores = os.cpu_count()
        print(f"machine: {cores} cores; {args.rounds} interleaved rounds of {args.duration} s each"
              + (f"; baseline {args.baseline}" if args.baseline else ""), flush=True)
        key = create_key(ports["bff-memory"], cookies["bff-memory"])
        if args.only_keys:
            print("6. API key vs cookie session on the same routes (1 thread, 32 connections)", flush=True)
            keyed = keys_vs_cookie(ports["bff-memory"], cookies["bff-memory"], key, args.rounds, args.duration, api_path)
            print("\n".join(report.keys_section(keyed, args.rounds)))
            return

        print("1. token endpoint (1 thread, 32 connections)", flush=True)
        tok = rounds([b["token"] for b in builds] + [token("bff-file"), token("node")], args.rounds, args.duration, 32)
        print("1b. the ceiling: a route that does nothing (GET /healthz) on each server", flush=True)
        ceiling = rounds([b["healthz"] for b in builds] + [("node-healthz", f"http://127.0.0.1:{ports['node']}/healthz", get, "")],
                         args.rounds, args.duration, 32)
        print("2. proxy (1 thread, 32 connections)", flush=True)
        prx = rounds([b["proxy"] for b in builds] + [node_proxy, nginx_proxy, direct], args.rounds, args.duration, 32)
        print("3. memory under 1,000 keep-alive connections on the proxy (2 threads)", flush=True)
        mem = rss_rounds(builds, args.rounds, args.duration, get)
        print("4. scaling (one round each)", flush=True)
        scaling = {}
        for conns in (32, 256, 1024):
            threads = 1 if conns == 32 else 2
            scaling[("token", conns)] = rounds([this["token"], token("node")], 1, args.duration, conns, threads)
            scaling[("proxy", conns)] = rounds([this["proxy"], nginx_proxy], 1, args.duration, conns, threads)
        print("5. the local endpoint's ClickHouse SQL: a new text per call (parsed and translated) vs a repeated one", flush=True)
        sql_script = os.path.join(ROOT, "bench", "sql.lua")
        sql_url = f"http://127.0.0.1:{local_port}/v0/sql"
        local = rounds([("sql-repeated-text", sql_url, sql_script, "", {"BENCH_TOKEN": KEY}),
                        ("sql-new-text", sql_url, sql_script, "", {"BENCH_TOKEN": KEY, "BENCH_FRESH": "1"})],
                       report.sql_rounds(args.rounds), args.duration, 8)
        print("6. API key vs cookie session on the same routes (1 thread, 32 connections)", flush=True)
        keyed = keys_vs_cookie(ports["bff-memory"], cookies["bff-memory"], key, args.rounds, args.duration, api_path)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    names = [{"label": b["label"], "token": b["token"][0], "healthz": b["healthz"][0], "proxy": b["proxy"][0]} for b in builds]
    report.write(args, cores, names, tok, ceiling, prx, mem, scaling, local, keyed)


if __name__ == "__main__":
    main()
