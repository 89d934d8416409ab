// The Node.js proxy a team would write in an afternoon instead of tinybird-bff's proxy mode:
// node:http, an in-memory session map keyed by the cookie, an undici keep-alive pool to
// Tinybird, the user's tenant forced into the fixed param as the BFF does (`org_id=globex` in
// the URL becomes `acme`). One process, as such a service usually starts. Used only by bench/run.
// Usage: node server.mjs PORT UPSTREAM_ORIGIN (the token from TINYBIRD_TOKEN).
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

const [port = '0', upstream = 'http://127.0.0.1:7181'] = process.argv.slice(2);
const auth = `Bearer ${process.env.TINYBIRD_TOKEN}`;
const pool = new Pool(upstream, { connections: 128 });
const pipes = new Set(['recent_orders', 'sales_by_day', 'top_products']);
const sessions = new Map([['bench-session', { id: 'alice', tenant: 'acme', pipes }]]);
const route = /^\/api\/pipes\/([A-Za-z0-9_]+)\.json$/;

function sessionId(cookie = '') {
  for (const part of cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === 'sid') return v;
  }
  return undefined;
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const user = sessions.get(sessionId(req.headers.cookie));
  if (!user) return json(res, 401, { error: 'not signed in' });
  const url = new URL(req.url, 'http://localhost');
  const pipe = route.exec(url.pathname)?.[1];
  if (req.method !== 'GET' || !pipe) return json(res, 404, { error: 'not found' });
  if (!user.pipes.has(pipe)) return json(res, 403, { error: `no access to ${pipe}` });
  url.searchParams.delete('token');
  url.searchParams.set('org_id', user.tenant);
  try {
    const up = await pool.request({ method: 'GET', path: `/v0/pipes/${pipe}.json?${url.searchParams}`, headers: { authorization: auth } });
    res.writeHead(up.statusCode, { 'content-type': up.headers['content-type'] ?? 'application/json' });
    await pipeline(up.body, res);
  } catch {
    if (!res.headersSent) json(res, 502, { error: 'Tinybird did not answer' });
    else res.destroy();
  }
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
