#!/usr/bin/env python3
"""Differential tests: the local endpoint's ClickHouse against real ClickHouse (chdb).

Starts `tinybird-bff local` (the embedded demo project), copies its rows into chdb with the
schema of demo/datasources/*.datasource, then runs every query of corpus.sql on both: the
local endpoint's /v0/sql over a socket with the admin token, and chdb. Answers must match:
column names and ClickHouse types, rows (floats to 1e-9 relative), and row order when the
query orders at its outermost level. Queries under a `-- refused` heading must be refused
by the local endpoint with a 400 that names the construct (real ClickHouse accepts them).
Then every demo pipe is rendered the way Tinybird renders it and run in chdb: real
ClickHouse must accept it and agree with the local endpoint's /v0/pipes answer.

    python3 tests/clickhouse/differential.py target/release/tinybird-bff [-v]

Exits non-zero on any difference; prints "N passed, M failed".
"""

import json
import math
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

os.environ["TZ"] = "UTC"
import chdb.session  # noqa: E402  (after TZ, so both sides agree on "today")

ROOT = Path(__file__).resolve().parents[2]
KEY = "p.differential-test-key"
VERBOSE = "-v" in sys.argv


def start_endpoint(binary):
    env = dict(os.environ, TINYBIRD_SIGNING_KEY=KEY)
    proc = subprocess.Popen(
        [binary, "local", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("tinybird: "):
            return proc, line.split(" ", 1)[1].strip()
    raise SystemExit("the local endpoint did not start: " + proc.stdout.read())


def http(url):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def local_sql(base, query):
    params = urllib.parse.urlencode({"q": query, "output_format_json_quote_64bit_integers": "0"})
    return http(f"{base}/v0/sql?{params}")


def datasources():
    """(name, [(column, type)], sorting key) of each demo data source."""
    out = []
    for path in sorted((ROOT / "demo" / "datasources").glob("*.datasource")):
        text = path.read_text()
        schema = re.search(r"SCHEMA >\n((?:[ \t]+.*\n?)+)", text).group(1)
        columns = re.findall(r"`(\w+)`\s+([\w()]+)", schema)
        key = re.search(r'ENGINE_SORTING_KEY "([^"]*)"', text).group(1)
        out.append((path.stem, columns, key))
    return out


def load_chdb(base):
    sess = chdb.session.Session()
    for name, columns, key in datasources():
        cols = ", ".join(f"`{c}` {t}" for c, t in columns)
        sess.query(f"CREATE TABLE {name} ({cols}) ENGINE = MergeTree ORDER BY ({key})")
        status, rows = local_sql(base, f"SELECT * FROM {name} FORMAT JSONEachRow")
        assert status == 200, rows
        sess.query(f"INSERT INTO {name} FORMAT JSONEachRow {rows}")
        count = json.loads(str(sess.query(f"SELECT count() AS n FROM {name}", "JSON")))["data"][0]["n"]
        assert int(count) == rows.count("\n"), f"{name}: {count} rows loaded"
    return sess


def corpus():
    """(section, query) pairs of corpus.sql: queries end with `;`, `-- ` lines are headings."""
    section, buffer, out = "", [], []
    for line in (Path(__file__).parent / "corpus.sql").read_text().splitlines():
        if line.startswith("-- ") and not buffer:
            section = line[3:].strip()
            continue
        if not line.strip():
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            out.append((section, " ".join(buffer).rstrip().rstrip(";")))
            buffer = []
    return out


def ordered(query):
    """Whether the outermost query has an ORDER BY (then row order is compared)."""
    depth, text = 0, ""
    for c in query:
        depth += c == "("
        depth -= c == ")"
        text += c if depth == 0 else " "
    return " ORDER BY " in text.upper()


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:  # 64-bit integers may arrive quoted on one side
            return same(json.loads(a), json.loads(b))
        except ValueError:
            return False
    if isinstance(a, str) != isinstance(b, str) and a is not None and b is not None:
        try:
            return same(json.loads(a) if isinstance(a, str) else a, json.loads(b) if isinstance(b, str) else b)
        except ValueError:
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def compare(expected, got, is_ordered):
    """None when equal, else what differs."""
    em = [(m["name"], m["type"]) for m in expected["meta"]]
    gm = [(m["name"], m["type"]) for m in got["meta"]]
    if em != gm:
        return f"meta differs:\n  clickhouse {em}\n  local      {gm}"
    names = [n for n, _ in em]
    erows = [[r[n] for n in names] for r in expected["data"]]
    grows = [[r[n] for n in names] for r in got["data"]]
    if len(erows) != len(grows):
        return f"{len(erows)} rows in clickhouse, {len(grows)} local"
    if not is_ordered:
        key = lambda row: json.dumps(row, sort_keys=True, default=str)
        erows, grows = sorted(erows, key=key), sorted(grows, key=key)
    for i, (e, g) in enumerate(zip(erows, grows)):
        if not all(same(x, y) for x, y in zip(e, g)):
            return f"row {i} differs:\n  clickhouse {e}\n  local      {g}"
    return None


def render_pipe(text, params):
    """Tinybird's rendering of the demo's template subset, values as ClickHouse literals."""
    nodes = re.findall(r"NODE (\w+)\n(?:DESCRIPTION >\n(?:[ \t]+.*\n)+)?SQL >\n((?:[ \t]+.*\n?|\n)+)", text)
    rendered = []
    for name, sql in nodes:
        sql = "\n".join(l[4:] for l in sql.splitlines()).strip().lstrip("%").strip()

        def block(m):
            cond = re.findall(r"defined\((\w+)\)", m.group(1))
            return m.group(2) if all(params.get(c) for c in cond) else ""

        sql = re.sub(r"\{%\s*if (.*?)%\}(.*?)\{%\s*end\s*%\}", block, sql, flags=re.S)

        def value(m):
            ty, name, default = m.group(1), m.group(2), m.group(3)
            raw = params.get(name, default.strip("'\" ") if default else None)
            if raw is None:
                raise KeyError(name)
            return str(int(raw)) if ty.startswith(("Int", "UInt")) else "'" + str(raw).replace("'", "\\'") + "'"

        sql = re.sub(r"\{\{\s*(\w+)\((\w+)(?:,\s*([^)=]+?))?(?:,\s*\w+=\w+)?\)\s*\}\}", value, sql)
        rendered.append((name, sql))
    *above, (_, endpoint) = rendered
    if not above:
        return endpoint
    return "WITH " + ", ".join(f"{n} AS ({s})" for n, s in above) + " " + endpoint


PIPE_CALLS = [
    ("top_products", {"org_id": "acme"}),
    ("top_products", {"org_id": "globex", "days": "7", "limit": "3"}),
    ("sales_by_day", {"org_id": "initech"}),
    ("sales_by_day", {"org_id": "acme", "category": "gear", "days": "14"}),
    ("recent_orders", {"org_id": "globex", "limit": "5"}),
    ("orgs_overview", {}),
    ("orgs_overview", {"plan": "pro"}),
]


def main():
    binary = next((a for a in sys.argv[1:] if not a.startswith("-")), str(ROOT / "target/release/tinybird-bff"))
    proc, base = start_endpoint(binary)
    passed, failed = 0, []
    try:
        sess = load_chdb(base)
        for section, query in corpus():
            refused = section.startswith("refused")
            status, body = local_sql(base, query)
            if refused:
                word = section.split(":", 1)[1].strip() if ":" in section else ""
                ok = status == 400 and "not supported" in body and word.lower() in body.lower()
                outcome = None if ok else f"expected a 400 naming {word!r}, got {status} {body[:300]}"
                # The construct must be real ClickHouse: chdb accepts it.
                try:
                    sess.query(query, "JSON")
                except Exception as e:  # noqa: BLE001
                    outcome = f"clickhouse refuses it too ({str(e)[:200]}): not a refusal test"
            else:
                try:
                    expected = json.loads(str(sess.query(query, "JSON")))
                except Exception as e:  # noqa: BLE001
                    outcome = f"clickhouse refused the query: {str(e)[:300]}"
                else:
                    if status != 200:
                        outcome = f"local endpoint answered {status}: {body[:300]}"
                    else:
                        outcome = compare(expected, json.loads(body), ordered(query))
            if outcome is None:
                passed += 1
                if VERBOSE:
                    print(f"ok   [{section}] {query}")
            else:
                failed.append(f"FAIL [{section}] {query}\n  {outcome}")
        for pipe, params in PIPE_CALLS:
            text = (ROOT / "demo" / "endpoints" / f"{pipe}.pipe").read_text()
            sql = render_pipe(text, params)
            query = urllib.parse.urlencode(dict(params, output_format_json_quote_64bit_integers="0"))
            status, body = http(f"{base}/v0/pipes/{pipe}.json?{query}")
            try:
                expected = json.loads(str(sess.query(sql, "JSON")))
                outcome = f"{status} {body[:300]}" if status != 200 else compare(expected, json.loads(body), ordered(sql))
            except Exception as e:  # noqa: BLE001
                outcome = f"clickhouse refused the demo pipe: {str(e)[:300]}\n  {sql}"
            if outcome is None:
                passed += 1
                if VERBOSE:
                    print(f"ok   [pipe] {pipe} {params}")
            else:
                failed.append(f"FAIL [pipe] {pipe} {params}\n  {outcome}")
    finally:
        proc.terminate()
        proc.wait()
    for f in failed:
        print(f)
    print(f"differential: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
