"""docs/benchmarks.md from one run of bench/harness.py: issue #26's goals with their verdicts
first (for this build and, with --baseline, the other binary side by side), then each
section's medians. Everything from NOTES_HEADING on is written by hand and kept by re-runs.
"""
import os, platform, statistics, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Everything from this heading on in docs/benchmarks.md is written by hand and kept by re-runs.
NOTES_HEADING = "## Notes (written by hand; bench/run keeps this section)"
DEFAULTS = {"duration": 8, "rounds": 6}


def sql_rounds(rounds_n):
    """Section 5 is no goal: at most 3 rounds keep the whole run short."""
    return min(rounds_n, 3)


def med(results, key):
    return statistics.median(r[key] for r in results)


def goals(build, tok, ceiling, prx, mem):
    """Issue #26's table for one build: (measure, goal, value text, met)."""
    m = lambda res, name, key: med(res[name], key)
    proxy, token = build["proxy"], build["token"]
    node_proxy = m(prx, proxy, "rps") / m(prx, "node-proxy", "rps")
    nginx = m(prx, proxy, "rps") / m(prx, "nginx-proxy_pass", "rps")
    p99 = m(prx, proxy, "p99") - m(prx, "nginx-proxy_pass", "p99")
    own = m(tok, token, "rps") / m(ceiling, build["healthz"], "rps")
    jose = m(tok, token, "rps") / m(tok, "node", "rps")
    peak = med(mem[build["label"]], "peak") / 1024
    return [
        ("proxy / Node proxy, 32 conns", ">= 3", f"{node_proxy:.2f}", node_proxy >= 3),
        ("proxy / NGINX, 32 conns", ">= 0.6", f"{nginx:.2f}", nginx >= 0.6),
        ("proxy p99 over NGINX, 32 conns", "<= +1 ms", f"{p99:+.2f} ms", p99 <= 1.0),
        ("token / own `/healthz`", ">= 0.8", f"{own:.2f}", own >= 0.8),
        ("token / Node + jose", ">= 5", f"{jose:.2f}", jose >= 5),
        ("peak RSS, 1,000 proxy connections", "< 48 MB", f"{peak:.1f} MB", peak < 48),
    ]


def goals_table(builds, tok, ceiling, prx, mem):
    verdict = lambda ok: "met" if ok else "**missed**"
    per_build = [goals(b, tok, ceiling, prx, mem) for b in builds]
    head = "| measure | goal | " + " | ".join(f"{b['label']} | verdict" for b in builds) + " |"
    lines = [head, "| --- | --- | " + " | ".join("---: | ---" for _ in builds) + " |"]
    for i, (measure, goal, _, _) in enumerate(per_build[0]):
        cells = " | ".join(f"{rows[i][2]} | {verdict(rows[i][3])}" for rows in per_build)
        lines.append(f"| {measure} | {goal} | {cells} |")
    return lines


def table(results):
    lines = ["| target | req/s | p50 ms | p99 ms | errors |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, res in results.items():
        lines.append(f"| {name} | {med(res, 'rps'):.0f} | {med(res, 'p50'):.2f} | {med(res, 'p99'):.2f} | {sum(r['errors'] for r in res)} |")
    return lines


def command(args):
    cmd = "bench/run"
    if args.duration != DEFAULTS["duration"]:
        cmd += f" --duration {args.duration}"
    if args.rounds != DEFAULTS["rounds"]:
        cmd += f" --rounds {args.rounds}"
    if args.baseline:
        cmd += f" --baseline {args.baseline}"
    return cmd


def this_commit():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
        return rev.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def keys_section(keyed, rounds_n):
    """Section 6: what verifying an API key costs per request, against a cookie session."""
    m = med
    ratio = lambda a, b: m(keyed[a], "rps") / m(keyed[b], "rps")
    return [
        "",
        "## 6. API keys vs a cookie session on the same routes",
        "",
        "The same BFF, the same user's rows: `POST /api/token` and the proxy (`GET /api/pipes/top_products.json`) with",
        "alice's session cookie (memory sessions) and with an API key of her tenant (`Authorization: Bearer tbk_...`,",
        f"SQLite store; the key is cached, re-read from the store twice a second; `bench/key.lua`). {rounds_n} interleaved rounds.",
        "",
        *table(keyed),
        "",
        f"- Token route, key / cookie: **{ratio('token-key', 'token-cookie'):.2f}** of the throughput; "
        f"p50 key - cookie **{m(keyed['token-key'], 'p50') - m(keyed['token-cookie'], 'p50'):+.2f} ms**.",
        f"- Proxy, key / cookie: **{ratio('proxy-key', 'proxy-cookie'):.2f}** of the throughput; "
        f"p50 key - cookie **{m(keyed['proxy-key'], 'p50') - m(keyed['proxy-cookie'], 'p50'):+.2f} ms**.",
        "",
    ]


def write(args, cores, builds, tok, ceiling, prx, mem, scaling, local, keyed):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem_total = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0) / 1024 / 1024
    m = med
    this = builds[0]
    baseline = (f" The baseline (`{args.baseline}`) ran the same BFF scenarios (memory sessions) in the same rounds, "
                "right after this build in each." if args.baseline else "")
    lines = [
        "# Benchmarks",
        "",
        f"Measured with `{command(args)}` on {time.strftime('%Y-%m-%d')} (this build: `{this_commit()}`): {cores} cores ({cpu}), "
        f"{mem_total:.0f} GiB, wrk, the BFF, its competitors and their upstream all on this one machine. Each row of sections "
        f"1-3 is the median of {args.rounds} interleaved {args.duration} s rounds (A B C A B C ...).{baseline} Ratios are what to "
        "read: the machines are shared and noisy, so absolute numbers move between runs, and a 10% move between two runs "
        "is within noise.",
        "",
        "## Goals (issue #26)",
        "",
        "Ratios of the medians below, measured in this run; a verdict is this run's, never a timed test's.",
        "",
        *goals_table(builds, tok, ceiling, prx, mem),
        "",
        "## 1. Token endpoint: `POST /api/token` vs a Node.js `node:http` + `jose` route",
        "",
        "Logged-in session, 3 pipes with fixed params, 1 thread, 32 connections. The Node server looks the",
        "session up in a `Map` and signs the same claims with `SignJWT` (`bench/node-token/server.mjs`).",
        "",
        *table(tok),
    ]
    bm, bf, nd = tok[this["token"]], tok["bff-file"], tok["node"]
    lines += [
        "",
        f"- BFF (memory sessions) / Node: **{m(bm, 'rps') / m(nd, 'rps'):.1f}x** the requests/s; "
        f"p99 {m(bm, 'p99'):.2f} ms vs {m(nd, 'p99'):.2f} ms (target lower: {'met' if m(bm, 'p99') < m(nd, 'p99') else 'missed'}).",
        f"- BFF (file sessions) / Node: **{m(bf, 'rps') / m(nd, 'rps'):.1f}x**.",
        f"- File store / memory store: **{m(bf, 'rps') / m(bm, 'rps'):.2f}** of the throughput (target within 20%, i.e. at least 0.80).",
        "",
        "The ceiling: the same wrk settings on a route that does nothing (`GET /healthz`, no session, no",
        "signing) on each server, measured in the same run. No token route can beat its own server's no-op.",
        "",
        *table(ceiling),
    ]
    nh = ceiling["node-healthz"]
    lines += [""]
    for b in builds:
        t, h = tok[b["token"]], ceiling[b["healthz"]]
        lines.append(f"- The token route of {b['label']} runs at **{m(t, 'rps') / m(h, 'rps'):.2f}** of its own no-op ceiling (memory sessions).")
    lines += [
        f"- File sessions: {m(bf, 'rps') / m(ceiling[this['healthz']], 'rps'):.2f}; Node's token route at {m(nd, 'rps') / m(nh, 'rps'):.2f} "
        f"of its own ({m(nh, 'rps'):.0f} req/s).",
        "",
        "## 2. Proxy mode vs a Node proxy and NGINX `proxy_pass`",
        "",
        "Same upstream for all: NGINX serving a static ~1 KB Tinybird-shaped JSON. NGINX: `worker_processes auto`,",
        "keep-alive upstream pool, access log off. The Node proxy is what a team would write in an afternoon",
        "(`bench/node-proxy/server.mjs`: `node:http`, a session `Map` keyed by the cookie, an undici keep-alive pool,",
        "the tenant forced into the fixed param; one process). The BFF also checks the session and the grant, rewrites",
        "the fixed param (`org_id=globex` in the URL becomes the user's `acme`) and signs the upstream request with a",
        "cached JWT.",
        "",
        *table(prx),
        "",
    ]
    ng, di, npx = prx["nginx-proxy_pass"], prx["upstream-direct"], prx["node-proxy"]
    for b in builds:
        bp = prx[b["proxy"]]
        lines += [
            f"- {b['label']}: BFF / Node proxy **{m(bp, 'rps') / m(npx, 'rps'):.2f}**, BFF / NGINX **{m(bp, 'rps') / m(ng, 'rps'):.2f}**, "
            f"p99 over NGINX **{m(bp, 'p99') - m(ng, 'p99'):+.2f} ms**; latency added over calling the upstream directly: "
            f"p50 {m(bp, 'p50') - m(di, 'p50'):+.2f} ms, p99 {m(bp, 'p99') - m(di, 'p99'):+.2f} ms.",
        ]
    lines += [
        "",
        "## 3. Memory",
        "",
        "Peak RSS of the BFF (`VmHWM`, reset through `/proc/PID/clear_refs` before each round so each round",
        f"measures its own) under 1,000 concurrent keep-alive connections on the proxy (wrk, 2 threads), {args.rounds} rounds.",
        "",
        "| build | RSS before the load MB | peak RSS MB | req/s | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for b in builds:
        res = mem[b["label"]]
        lines.append(f"| {b['label']} | {m(res, 'before') / 1024:.1f} | {m(res, 'peak') / 1024:.1f} | {m(res, 'rps'):.0f} | "
                     f"{sum(r['errors'] for r in res)} |")
    lines += [
        "",
        "## 4. Scaling with connections",
        "",
        "This build, one round per row (no goal rests on these).",
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
        lines.append(f"- Proxy at {conns} connections: BFF / NGINX **{m(a, 'rps') / m(b, 'rps'):.2f}** (issue #17's target at least 0.90); "
                     f"p99 BFF - NGINX **{m(a, 'p99') - m(b, 'p99'):+.2f} ms**.")
    rep, new = local["sql-repeated-text"], local["sql-new-text"]
    lines += [
        "",
        "## 5. The local endpoint's ClickHouse SQL",
        "",
        "`GET /v0/sql` on `tinybird-bff local` (the demo data, 40,000 orders) with the admin token, 8 connections: a",
        "ClickHouse query (`SELECT count(), uniq(product_id) ... WHERE org_id = 'acme' ... FORMAT JSON`) translated to SQLite and run.",
        "With a repeated text the translation is a cache hit; with a new text per call (one literal changes) every call",
        f"parses and translates it again (`bench/sql.lua`). {sql_rounds(args.rounds)} interleaved rounds.",
        "",
        *table(local),
        "",
        f"- New text / repeated text: **{m(new, 'rps') / m(rep, 'rps'):.2f}** of the throughput: what parsing and translating costs "
        "a call that runs the query too.",
        "",
    ]
    lines += keys_section(keyed, args.rounds)
    lines += [
        "Micro-benchmarks of the hot functions: `cargo bench` (divan; `benches/hot_paths.rs`).",
        "",
    ]
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
    print("\nGoals (issue #26), this run:\n" + "\n".join(goals_table(builds, tok, ceiling, prx, mem)))
    print(f"\nwrote {args.output}")
