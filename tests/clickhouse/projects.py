#!/usr/bin/env python3
"""Project differential tests: whole Tinybird projects on the local endpoint against chdb.

Each folder under tests/clickhouse/projects/ is a Tinybird project (datasources/,
materializations/, endpoints/, fixtures/, events/) with a tests.json naming its tenants and
the endpoint calls to make. The project is loaded twice:

- into real ClickHouse (chdb) as Tinybird would: the .datasource and .pipe files are read with
  Tinybird's own parsers (`tinybird.datafile`, the `tinybird` package on PyPI), each data source
  becomes a table with its engine (`engine_full_from_dict`), each `TYPE materialized` pipe a
  ClickHouse materialized view `TO` its target (so every append runs `INSERT INTO target
  SELECT ...` on the appended rows), fixture rows are appended through the schema's JSONPaths;
  endpoint nodes are rendered with Tinybird's template engine (`tinybird.sql_template`) and
  composed the way Tinybird composes them (`tinybird.sql_toolset.replace_tables`: each node name,
  and each endpoint pipe name, replaced by its SQL as a subquery);
- into the local endpoint: `tinybird-bff local --project DIR`.

Then every endpoint is called for every tenant (a JWT whose fixed param is the tenant) and
parameter set, on both. Then the rows of events/<datasource>.ndjson are appended (Events API
`POST /v0/events?name=<ds>&wait=true` on the local endpoint; the same rows through the JSONPaths
in chdb, rows ClickHouse cannot read counted as quarantined) and every call is made again.

Each call's outcome is one of: agree (same status class; same meta, rows, order when ordered),
types (the same but for ClickHouse's LowCardinality(T) / SimpleAggregateFunction(f, T) in
meta, where the local endpoint says T), differ (the local endpoint answered something ClickHouse would not), refused (the local
endpoint answered 4xx where ClickHouse answered rows: a feature it does not have yet). It
prints totals (calls = endpoints x tenants x parameter sets x {before, after events}, plus one
per events file) and exits non-zero when refusals or differences exceed the counts recorded in
projects/baseline.json (a ratchet: lower them as the local endpoint learns; the goal is 0 and
0), or when ClickHouse refuses a project's own SQL (the project is wrong). Every difference is
printed, with its detail under -v.

    python3 tests/clickhouse/projects.py target/release/tinybird-bff [-v] [project ...]
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

os.environ["TZ"] = "UTC"
import chdb.session  # noqa: E402
import jwt  # noqa: E402
from tinybird.ch_utils.engine import engine_full_from_dict  # noqa: E402
from tinybird.datafile.parse_datasource import parse_datasource  # noqa: E402
from tinybird.datafile.parse_pipe import parse_pipe  # noqa: E402
from tinybird.sql_template import SQLTemplateException, render_sql_template  # noqa: E402
from tinybird.sql_toolset import replace_tables  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from differential import compare, ordered  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY = "p.projects-differential-key"
VERBOSE = "-v" in sys.argv


class Project:
    """A project folder read with Tinybird's parsers."""

    def __init__(self, folder):
        self.folder = folder
        self.name = folder.name
        self.tests = json.loads((folder / "tests.json").read_text())
        self.datasources = {}  # name -> list of Tinybird column dicts
        self.engines = {}  # name -> engine_full
        for path in sorted(folder.glob("datasources/*.datasource")):
            node = parse_datasource(str(path)).datafile.nodes[0]
            engine = node.get("engine") or {"type": "MergeTree", "args": []}
            self.datasources[path.stem] = node["columns"]
            self.engines[path.stem] = engine_full_from_dict(
                engine["type"], dict(engine["args"]), columns=node["columns"]
            )
        self.pipes = {}  # name -> nodes (dicts with name, sql, type?, datasource?)
        for sub in ("pipes", "endpoints", "materializations"):
            for path in sorted(folder.glob(f"{sub}/*.pipe")):
                self.pipes[path.stem] = parse_pipe(str(path)).datafile.nodes

    def materializations(self):
        for name, nodes in self.pipes.items():
            for i, node in enumerate(nodes):
                if node.get("type", "").lower() == "materialized":
                    yield name, nodes[: i + 1], node["datasource"]

    def endpoints(self):
        return [n for n, nodes in self.pipes.items() if not any(x.get("type") == "materialized" for x in nodes)]

    def sql(self, pipe, params, nodes=None, seen=()):
        """The pipe rendered and composed as Tinybird runs it (raises SQLTemplateException)."""
        nodes = nodes or self.pipes[pipe]
        served = next((n for n in nodes if n.get("type", "").lower() in ("endpoint", "materialized")), nodes[-1])
        replacements = {}
        for node in nodes:
            if node is served:
                break
            replacements[("", node["name"])] = "(" + render(node["sql"], params) + ")"
        for other in self.endpoints():
            if other != pipe and other not in seen and re.search(rf"\b{other}\b", served["sql"]):
                replacements[("", other)] = "(" + self.sql(other, params, seen=seen + (pipe,)) + ")"
        sql = render(served["sql"], params)
        return replace_tables(sql, replacements, output_one_line=True) if replacements else sql


def render(sql, params):
    sql = sql.strip()
    if not sql.startswith("%"):
        return sql
    text, _, _ = render_sql_template(sql[1:].lstrip(), dict(params))
    return text.strip()


def jsonpath(row, path):
    """The value at `$.a.b` in a JSON row, or KeyError."""
    value = row
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def through_jsonpaths(columns, row):
    """A row as Tinybird's NDJSON ingestion reads it: each column from its JSONPath (or its
    name); a missing value left out so ClickHouse applies the column's DEFAULT."""
    out = {}
    for column in columns:
        try:
            out[column["name"]] = jsonpath(row, column.get("jsonpath") or "$." + column["name"])
        except KeyError:
            pass
    return out


class ClickHouse:
    def __init__(self, project):
        self.project = project
        self.sess = chdb.session.Session()
        for name, columns in project.datasources.items():
            cols = ", ".join(
                f"`{c['name']}` {c['type']}" + (f" {c['default_value']}" if c.get("default_value") else "")
                for c in columns
            )
            self.sess.query(f"CREATE TABLE `{name}` ({cols}) ENGINE = {project.engines[name]}")
        for name, nodes, target in project.materializations():
            sql = project.sql(name, {}, nodes=nodes)
            self.sess.query(f"CREATE MATERIALIZED VIEW `{name}__mv` TO `{target}` AS {sql}")

    def append(self, datasource, text):
        """(successful rows, quarantined rows) of an NDJSON append."""
        columns = self.project.datasources[datasource]
        rows = [json.dumps(through_jsonpaths(columns, json.loads(line))) for line in text.splitlines() if line.strip()]
        insert = f"INSERT INTO `{datasource}` SETTINGS input_format_skip_unknown_fields = 0 FORMAT JSONEachRow "
        try:
            self.sess.query(insert + "\n".join(rows))
            return len(rows), 0
        except Exception:  # noqa: BLE001  (a row that does not fit: find it, as a quarantine does)
            pass
        good = []
        probe = f"_probe_{datasource}"
        self.sess.query(f"CREATE TABLE IF NOT EXISTS `{probe}` AS `{datasource}` ENGINE = Memory")
        for row in rows:
            try:
                self.sess.query(f"INSERT INTO `{probe}` FORMAT JSONEachRow {row}")
                good.append(row)
            except Exception:  # noqa: BLE001
                pass
        self.sess.query(f"TRUNCATE TABLE `{probe}`")
        if good:
            self.sess.query(insert + "\n".join(good))
        return len(good), len(rows) - len(good)

    def query(self, sql):
        return json.loads(str(self.sess.query(sql, "JSON")))


class Local:
    def __init__(self, binary, project):
        env = dict(os.environ, TINYBIRD_SIGNING_KEY=KEY)
        self.proc = subprocess.Popen(
            [binary, "local", "--listen", "127.0.0.1:0", "--project", str(project.folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.log = []
        for line in self.proc.stdout:
            if line.startswith("tinybird: "):
                self.base = line.split(" ", 1)[1].strip()
                break
            self.log.append(line.rstrip())
        else:
            raise SystemExit(f"{project.name}: the local endpoint did not start:\n" + "\n".join(self.log))
        self.workspace = next(l.split(": ", 1)[1].strip() for l in self.proc.stdout if l.startswith("workspace_id:"))

    def jwt(self, pipe, fixed):
        claims = {
            "workspace_id": self.workspace,
            "name": f"tenant-{'-'.join(str(v) for v in fixed.values())}",
            "exp": int(time.time()) + 600,
            "scopes": [{"type": "PIPES:READ", "resource": pipe, "fixed_params": fixed}],
        }
        return jwt.encode(claims, KEY, algorithm="HS256")

    def request(self, path, token, body=None):
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def call(project, ch, local, pipe, tenant, params):
    """(outcome, detail) of one endpoint call on both sides."""
    fixed = {project.tests["tenant_param"]: tenant}
    merged = dict(params, **fixed)  # the JWT's fixed params win over the URL's
    query = urllib.parse.urlencode(dict(params, output_format_json_quote_64bit_integers="0"))
    status, body = local.request(f"/v0/pipes/{pipe}.json?{query}", local.jwt(pipe, fixed))
    try:
        sql = project.sql(pipe, merged)
    except SQLTemplateException as e:
        # Tinybird answers 400 for a template error: so must the local endpoint.
        return ("agree", None) if status == 400 else ("differ", f"template error {e}; local {status} {body[:200]}")
    try:
        expected = ch.query(sql)
    except Exception as e:  # noqa: BLE001
        return "broken", f"clickhouse refused the project's own SQL: {str(e)[:300]}\n  {sql}"
    if status != 200:
        kind = "refused" if 400 <= status < 500 else "differ"
        return kind, f"local {status}: {body[:300]}"
    got = json.loads(body)
    diff = compare(expected, got, ordered(sql))
    if diff is None:
        return "agree", None
    unwrapped = dict(expected, meta=[dict(m, type=unwrap(m["type"])) for m in expected["meta"]])
    if compare(unwrapped, got, ordered(sql)) is None:
        return "types", diff
    return "differ", diff


def unwrap(ty):
    """A type without the wrappers that do not change values: LowCardinality(T),
    SimpleAggregateFunction(f, T)."""
    m = re.fullmatch(r"LowCardinality\((.*)\)", ty) or re.fullmatch(r"SimpleAggregateFunction\(\w+,\s*(.*)\)", ty)
    return unwrap(m.group(1)) if m else ty


def run(binary, folder, totals, failures):
    project = Project(folder)
    ch = ClickHouse(project)
    local = Local(binary, project)
    counts = {"agree": 0, "types": 0, "differ": 0, "refused": 0, "broken": 0}
    try:
        for problem in local.log:
            if VERBOSE:
                print(f"     {project.name} load: {problem}")
        for path in sorted(folder.glob("fixtures/*.ndjson")):
            ch.append(path.stem, path.read_text())
        for phase in ("fixtures", "events"):
            if phase == "events":
                for path in sorted(folder.glob("events/*.ndjson")):
                    text = path.read_text()
                    ok, quarantined = ch.append(path.stem, text)
                    status, body = local.request(f"/v0/events?name={path.stem}&wait=true", KEY, text.encode())
                    label = f"[{project.name} events] {path.stem}"
                    if status != 200:
                        outcome = ("refused" if 400 <= status < 500 else "differ", f"local {status}: {body[:200]}")
                    else:
                        got = json.loads(body)
                        want = {"successful_rows": ok, "quarantined_rows": quarantined}
                        seen = {k: got.get(k) for k in want}
                        outcome = ("agree", None) if seen == want else ("differ", f"clickhouse {want}, local {seen}")
                    tally(counts, outcome, label, failures)
            for test in project.tests["calls"]:
                for params in test["params"]:
                    for tenant in project.tests["tenants"]:
                        outcome = call(project, ch, local, test["pipe"], tenant, params)
                        label = f"[{project.name} {phase}] {test['pipe']} {tenant} {params}"
                        tally(counts, outcome, label, failures)
    finally:
        local.stop()
    totals[project.name] = counts


def tally(counts, outcome, label, failures):
    kind, detail = outcome
    counts[kind] += 1
    if kind == "agree":
        if VERBOSE:
            print(f"ok      {label}")
    elif kind == "refused":
        if VERBOSE:
            print(f"refused {label}\n  {detail}")
    elif kind in ("differ", "types"):
        print(f"{kind:7} {label}" + (f"\n  {detail}" if VERBOSE else ""))
    else:
        failures.append(f"{kind.upper()} {label}\n  {detail}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    binary = args[0] if args else str(ROOT / "target/release/tinybird-bff")
    only = set(args[1:])
    baseline = json.loads((HERE / "projects" / "baseline.json").read_text())
    totals, failures = {}, []
    for folder in sorted(p for p in (HERE / "projects").iterdir() if p.is_dir()):
        if not only or folder.name in only:
            run(binary, folder, totals, failures)
    for f in failures:
        print(f)
    for name, c in totals.items():
        calls = sum(c.values())
        print(f"projects: {name}: {calls} calls: {c['agree']} agree, {c['types']} agree but for type wrappers, "
              f"{c['differ']} differ, {c['refused']} refused" + (f", {c['broken']} broken" if c["broken"] else ""))
        for kind in ("refused", "differ", "types"):
            allowed = baseline.get(name, {}).get(kind, 0)
            if c[kind] > allowed:
                failures.append(name)
                print(f"  {c[kind]} {kind}, more than the {allowed} of projects/baseline.json: a regression")
            elif c[kind] < allowed:
                print(f"  {c[kind]} {kind}, fewer than projects/baseline.json allows ({allowed}): lower it")
    all_ = {k: sum(c[k] for c in totals.values()) for k in ("agree", "types", "differ", "refused", "broken")}
    print(f"projects: {sum(all_.values())} calls: {all_['agree']} agree, {all_['types']} agree but for type wrappers, "
          f"{all_['differ']} differ, {all_['refused']} refused")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
