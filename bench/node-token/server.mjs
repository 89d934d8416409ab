// The Node.js token route a team would write instead of tinybird-bff (Tinybird's own
// examples use jose in Next.js): node:http, an in-memory session lookup, and jose's SignJWT
// minting the same claims the BFF mints. Used only by bench/run.
import http from 'node:http';
import { SignJWT } from 'jose';

const port = Number(process.argv[2] || 0);
const key = new TextEncoder().encode(process.env.TINYBIRD_SIGNING_KEY);
const workspaceId = process.env.TINYBIRD_WORKSPACE_ID;
const sessions = new Map([['bench-session', { id: 'alice', tenant: 'acme' }]]);
const pipes = ['recent_orders', 'sales_by_day', 'top_products'];

function sessionId(cookie = '') {
  for (const part of cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === 'sid') return v;
  }
  return undefined;
}

const server = http.createServer(async (req, res) => {
  // A route that does nothing: this server's ceiling on this machine (bench/run reports it).
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.method !== 'POST' || req.url !== '/api/token') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    return;
  }
  const user = sessions.get(sessionId(req.headers.cookie));
  if (!user) {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"not signed in"}');
    return;
  }
  const now = Math.floor(Date.now() / 1000);
  const exp = now + 600;
  const name = `${user.id}@${user.tenant}`;
  const token = await new SignJWT({
    workspace_id: workspaceId,
    name,
    scopes: pipes.map((p) => ({ type: 'PIPES:READ', resource: p, fixed_params: { org_id: user.tenant } })),
    limits: { rps: 20 },
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(key);
  const body = JSON.stringify({ token, expires_at: exp, expires_in: 600, server_time: now, host: 'http://127.0.0.1:7181', pipes, name });
  res.writeHead(200, { 'content-type': 'application/json' }).end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
