// Unit tests of web/tinybird-bff.js against a fake fetch (no server, no browser):
// token fetch/refresh/dedupe, server-clock expiry, 403 refresh+retry, fallback
// rules, 429 handling, sign-out, the fetch adapter for @tinybirdco/sdk, SQL on both
// paths (sql()) and the sign-in providers list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createClient, decodeJwtPayload, parseRetryAfter, toSearchParams,
  SignedOutError, ForbiddenError, RateLimitedError, NetworkError, QueryError, TinybirdBffError,
} from '../../web/tinybird-bff.js';

const TB = 'http://tinybird.test';

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.c2ln`;
}

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status, headers: { 'Content-Type': 'application/json', ...headers },
  });
}

const ROWS = { meta: [{ name: 'org_id', type: 'String' }], data: [{ org_id: 'acme' }], rows: 1, statistics: { elapsed: 0.001 } };

/**
 * A fake BFF + Tinybird behind one fetch. `clock.t` is the local clock (ms);
 * the server's clock is `clock.t + skewMs`. Handlers can be replaced per test.
 */
function fakeWorld({ ttl = 600, skewMs = 0 } = {}) {
  const clock = { t: 1_700_000_000_000 };
  const w = {
    clock,
    calls: [],
    tokensIssued: [],
    loggedIn: true,
    tokenGate: null, // a promise the token route waits on (to test dedupe)
    direct: (req) => json(200, ROWS),
    proxy: (req) => json(200, ROWS),
    providers: () => json(200, { local: true, providers: [] }),
    now: () => clock.t,
    sleeps: [],
    sleep: async (ms) => { w.sleeps.push(ms); clock.t += ms; },
    serverNow: () => Math.floor((clock.t + skewMs) / 1000),
  };
  w.fetch = async (url, init = {}) => {
    const req = { url: String(url), method: init.method ?? 'GET', headers: new Headers(init.headers), body: init.body, credentials: init.credentials };
    w.calls.push(req);
    if (req.url.startsWith(TB)) return w.direct(req);
    if (req.url.startsWith('/api/pipes/') || req.url.startsWith('/api/sql')) return w.loggedIn ? w.proxy(req) : json(401, { error: 'not logged in' });
    if (req.url === '/api/providers') return w.providers(req);
    if (req.url === '/api/token') {
      if (w.tokenGate) await w.tokenGate;
      if (!w.loggedIn) return json(401, { error: 'not logged in' });
      const now = w.serverNow();
      const n = w.tokensIssued.length + 1;
      const token = jwt({ workspace_id: 'ws', name: `u_alice_${n}`, exp: now + ttl, scopes: [{ type: 'PIPES:READ', resource: 'top_products', fixed_params: { org_id: 'acme' } }, { type: 'DATASOURCES:READ', resource: 'orders', filter: "org_id = 'acme'" }] });
      w.tokensIssued.push(token);
      return json(200, { token, expires_at: now + ttl, expires_in: ttl, server_time: now, host: TB, pipes: ['top_products'], datasources: ['orders'], name: `u_alice_${n}` });
    }
    if (req.url === '/api/logout') { w.loggedIn = false; return new Response(null, { status: 204 }); }
    if (req.url === '/api/login') {
      const { password } = JSON.parse(req.body);
      if (password !== 'alice-demo') return json(401, { error: 'wrong username or password' });
      w.loggedIn = true;
      return json(200, { user: { id: 'alice' } });
    }
    return json(404, { error: 'no route' });
  };
  w.count = (pred) => w.calls.filter(pred).length;
  w.tokenCalls = () => w.count((c) => c.url === '/api/token');
  w.directCalls = () => w.count((c) => c.url.startsWith(TB));
  w.proxyCalls = () => w.count((c) => c.url.startsWith('/api/pipes/'));
  w.client = (opts = {}) => createClient({ fetch: w.fetch, now: w.now, sleep: w.sleep, autoRefresh: false, ...opts });
  return w;
}

test('first query fetches a token and calls Tinybird directly with it', async () => {
  const w = fakeWorld();
  const tb = w.client();
  const res = await tb.query('top_products', { limit: 5, tags: ['a', 'b'], skip: undefined });
  assert.equal(res.path, 'direct');
  assert.deepEqual(res.data, ROWS.data);
  assert.deepEqual(JSON.parse(JSON.stringify(res)), ROWS, 'the added fields stay out of the JSON');
  const call = w.calls.find((c) => c.url.startsWith(TB));
  assert.equal(call.url, `${TB}/v0/pipes/top_products.json?limit=5&tags=a&tags=b`);
  assert.equal(call.headers.get('authorization'), `Bearer ${w.tokensIssued[0]}`);
  const tokenCall = w.calls.find((c) => c.url === '/api/token');
  assert.equal(tokenCall.method, 'POST');
  assert.equal(tokenCall.headers.get('x-bff-csrf'), '1');
  assert.equal(tokenCall.credentials, 'same-origin');
  await tb.query('top_products');
  assert.equal(w.tokenCalls(), 1, 'a fresh token is reused');
});

test('many queries waiting on a token share one token request', async () => {
  const w = fakeWorld();
  let open;
  w.tokenGate = new Promise((r) => { open = r; });
  const tb = w.client();
  const pending = Array.from({ length: 8 }, () => tb.query('top_products'));
  await new Promise((r) => setTimeout(r, 10));
  open();
  const results = await Promise.all(pending);
  assert.equal(w.tokenCalls(), 1);
  assert.ok(results.every((r) => r.path === 'direct'));
});

test('expiry is judged by the server clock, not a skewed browser clock', async () => {
  for (const skewMs of [3_600_000, -3_600_000]) {
    const w = fakeWorld({ ttl: 600, skewMs });
    const tb = w.client();
    await tb.query('top_products');
    const info = tb.tokenInfo();
    assert.ok(Math.abs(info.secondsLeft - 600) <= 1, `secondsLeft ${info.secondsLeft} with skew ${skewMs}`);
    assert.ok(Math.abs(info.serverOffsetMs - skewMs) <= 1000);
    w.clock.t += 400_000; // 200 s left by the server clock: still fresh (margin is 60 s)
    await tb.query('top_products');
    assert.equal(w.tokenCalls(), 1, `no refetch with skew ${skewMs}`);
    w.clock.t += 150_000; // 50 s left: inside the margin, refreshed before it expires
    await tb.query('top_products');
    assert.equal(w.tokenCalls(), 2, `refreshed ahead of expiry with skew ${skewMs}`);
    assert.equal(w.calls.at(-1).headers.get('authorization'), `Bearer ${w.tokensIssued[1]}`);
  }
});

test('token info exposes the decoded claims and the refresh time', async () => {
  const w = fakeWorld({ ttl: 20 });
  const seen = [];
  const tb = w.client({ onTokenRefresh: (i) => seen.push(i) });
  assert.equal(tb.tokenInfo(), null);
  await tb.getToken();
  const info = tb.tokenInfo();
  assert.equal(info.claims.name, 'u_alice_1');
  assert.equal(info.claims.scopes[0].fixed_params.org_id, 'acme');
  assert.equal(info.expiresIn, 20);
  assert.equal(info.refreshAt, info.expiresAt - 5, 'default margin is a quarter of the lifetime');
  assert.deepEqual(info.pipes, ['top_products']);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].token, w.tokensIssued[0]);
});

test('a 403 from Tinybird refreshes the token once and retries once', async () => {
  const w = fakeWorld();
  const tb = w.client();
  await tb.getToken();
  const stale = w.tokensIssued[0];
  w.direct = (req) => (req.headers.get('authorization') === `Bearer ${stale}` ? json(403, { error: 'token expired' }) : json(200, ROWS));
  const res = await tb.query('top_products');
  assert.equal(res.path, 'direct');
  assert.equal(w.tokenCalls(), 2);
  assert.equal(w.directCalls(), 2);
});

test('a 403 that survives the refresh is a ForbiddenError, not a loop', async () => {
  const w = fakeWorld();
  w.direct = () => json(403, { error: 'pipe not in scopes' });
  const tb = w.client();
  await assert.rejects(tb.query('orgs_overview'), (e) => e instanceof ForbiddenError && e.status === 403 && /not in scopes/.test(e.message));
  assert.equal(w.tokenCalls(), 2);
  assert.equal(w.directCalls(), 2);
  assert.equal(w.proxyCalls(), 0, 'a 403 is not a reason to fall back');
});

test('concurrent 403s on the same stale token cause a single refresh', async () => {
  const w = fakeWorld();
  const tb = w.client();
  await tb.getToken();
  const stale = w.tokensIssued[0];
  w.direct = (req) => (req.headers.get('authorization') === `Bearer ${stale}` ? json(403, { error: 'expired' }) : json(200, ROWS));
  await Promise.all(Array.from({ length: 5 }, () => tb.query('top_products')));
  assert.equal(w.tokenCalls(), 2, 'one initial fetch and one refresh');
  assert.equal(w.directCalls(), 10);
});

test('auto mode falls back to the proxy on a network error and sticks to it for a while', async () => {
  const w = fakeWorld();
  w.direct = () => { throw new TypeError('Failed to fetch'); };
  const events = [];
  const tb = w.client({ proxyStickySeconds: 60, onFallback: (e) => events.push(['fallback', e]) });
  tb.on('recovered', (e) => events.push(['recovered', e]));
  const first = await tb.query('top_products', { limit: 3 });
  assert.equal(first.path, 'proxy');
  assert.equal(first.fellBack, true);
  assert.deepEqual(first.data, ROWS.data);
  assert.equal(events.length, 1);
  assert.match(events[0][1].reason, /Failed to fetch/);
  const proxied = w.calls.find((c) => c.url.startsWith('/api/pipes/'));
  assert.equal(proxied.url, '/api/pipes/top_products.json?limit=3');
  assert.equal(proxied.headers.get('authorization'), null, 'no token goes to the proxy');
  assert.equal(proxied.credentials, 'same-origin');
  assert.equal(tb.state().next, 'proxy');

  const second = await tb.query('top_products');
  assert.equal(second.path, 'proxy');
  assert.equal(second.fellBack, false);
  assert.equal(w.directCalls(), 1, 'no direct probe inside the sticky window');

  w.clock.t += 61_000;
  w.direct = () => json(200, ROWS);
  const third = await tb.query('top_products');
  assert.equal(third.path, 'direct', 'direct is probed again after the window');
  assert.equal(events.at(-1)[0], 'recovered');
});

test('a 400 from Tinybird is thrown as is, without falling back', async () => {
  const w = fakeWorld();
  w.direct = () => json(400, { error: '[Error] Missing columns: limit is not an Int32' });
  const tb = w.client();
  await assert.rejects(tb.query('top_products', { limit: 'x' }), (e) => e instanceof QueryError && e.status === 400 && e.path === 'direct');
  assert.equal(w.proxyCalls(), 0);
});

test('forced direct mode surfaces a network error instead of falling back', async () => {
  const w = fakeWorld();
  w.direct = () => { throw new TypeError('Failed to fetch'); };
  const tb = w.client({ mode: 'direct' });
  await assert.rejects(tb.query('top_products'), (e) => e instanceof NetworkError && e.path === 'direct' && /tinybird\.test/.test(e.message));
  assert.equal(w.proxyCalls(), 0);
  // A per-call path override in auto mode does not fall back either.
  tb.setMode('auto');
  await assert.rejects(tb.query('top_products', {}, { path: 'direct' }), NetworkError);
  assert.equal(w.proxyCalls(), 0);
});

test('proxy mode never fetches a token', async () => {
  const w = fakeWorld();
  const tb = w.client({ mode: 'proxy' });
  const res = await tb.query('top_products', { limit: 2 });
  assert.equal(res.path, 'proxy');
  assert.equal(w.tokenCalls(), 0);
  assert.equal(tb.tokenInfo(), null);
  tb.setMode('direct');
  assert.equal((await tb.query('top_products')).path, 'direct');
  assert.throws(() => tb.setMode('sideways'), TypeError);
});

test('429 waits per Retry-After within maxRetryDelayMs, then succeeds', async () => {
  const w = fakeWorld();
  const statuses = [[429, '2'], [429, '10'], [200]];
  w.direct = () => {
    const [status, ra] = statuses.shift();
    return status === 200 ? json(200, ROWS) : json(429, { error: 'slow down' }, { 'Retry-After': ra });
  };
  const retries = [];
  const tb = w.client({ maxRetryDelayMs: 10_000 });
  tb.on('retry', (e) => retries.push(e));
  const res = await tb.query('top_products');
  assert.equal(res.path, 'direct');
  assert.equal(res.retries, 2);
  assert.deepEqual(w.sleeps, [2000, 10_000]);
  assert.deepEqual(retries.map((r) => r.status), [429, 429]);
});

test('a 429 whose Retry-After is beyond maxRetryDelayMs is final: thrown at once with its reset time', async () => {
  const w = fakeWorld();
  // The BFF's budget refusal: spent until midnight UTC, hours away.
  const said = 'tenant initech is over its daily_requests budget (40 of 40); it resets at 2023-11-15 00:00 UTC';
  w.proxy = () => json(429, { error: said }, { 'Retry-After': '32244' });
  const tb = w.client({ mode: 'proxy', maxRetryDelayMs: 10_000 });
  const retries = [];
  tb.on('retry', (e) => retries.push(e));
  const err = await tb.query('top_products').catch((e) => e);
  assert.ok(err instanceof RateLimitedError, err);
  assert.equal(err.retryAfter, 32244);
  assert.equal(err.resetAt, Math.ceil(w.clock.t / 1000) + 32244);
  assert.match(err.message, /429\); retry after 32244s \(at \d\d:\d\d UTC\): tenant initech is over/);
  assert.deepEqual(w.sleeps, [], 'no wait at all');
  assert.deepEqual(retries, [], 'and no retry');
  assert.equal(w.proxyCalls(), 1);

  // The token route too: a spent budget refuses new tokens the same way.
  w.direct = () => json(200, ROWS);
  let tokenCalls = 0;
  const fetchToken = w.fetch;
  w.fetch = async (url, init) => {
    if (String(url) === '/api/token') { tokenCalls += 1; return json(429, { error: said }, { 'Retry-After': '3600' }); }
    return fetchToken(url, init);
  };
  const direct = w.client({ mode: 'direct' });
  const tokenErr = await direct.query('top_products').catch((e) => e);
  assert.ok(tokenErr instanceof RateLimitedError && tokenErr.path === 'bff' && tokenErr.retryAfter === 3600, tokenErr);
  assert.equal(tokenCalls, 1, 'one token request, not four');
  assert.deepEqual(w.sleeps, []);
});

test('429 without Retry-After backs off exponentially and gives up after maxRetries', async () => {
  const w = fakeWorld();
  w.proxy = () => json(429, { error: 'too many requests' });
  const tb = w.client({ mode: 'proxy', maxRetries: 3, retryBaseMs: 250 });
  await assert.rejects(tb.query('top_products'), (e) => e instanceof RateLimitedError && e.status === 429 && e.path === 'proxy');
  assert.deepEqual(w.sleeps, [250, 500, 1000]);
  assert.equal(w.proxyCalls(), 4);
});

test('429 on the last try reports how long the server wanted', async () => {
  const w = fakeWorld();
  w.direct = () => json(429, { error: 'rps limit' }, { 'Retry-After': '7' });
  const tb = w.client({ maxRetries: 1 });
  await assert.rejects(tb.query('top_products'), (e) => e instanceof RateLimitedError && e.retryAfter === 7);
  assert.deepEqual(w.sleeps, [7000]);
});

test('a 401 from the BFF is a SignedOutError and emits signedout', async () => {
  const w = fakeWorld();
  w.loggedIn = false;
  const events = [];
  const tb = w.client({ onSignedOut: (e) => events.push(e) });
  await assert.rejects(tb.query('top_products'), (e) => e instanceof SignedOutError && e.status === 401);
  tb.setMode('proxy');
  await assert.rejects(tb.query('top_products'), SignedOutError);
  assert.equal(events.length, 2);
});

test('logout forgets the token and later queries fail as signed out', async () => {
  const w = fakeWorld();
  const tb = w.client();
  await tb.query('top_products');
  const events = [];
  tb.on('signedout', (e) => events.push(e.reason));
  await tb.logout();
  const logoutCall = w.calls.find((c) => c.url === '/api/logout');
  assert.equal(logoutCall.method, 'POST');
  assert.equal(logoutCall.headers.get('x-bff-csrf'), '1');
  assert.equal(tb.tokenInfo(), null);
  const directBefore = w.directCalls();
  await assert.rejects(tb.query('top_products'), SignedOutError);
  assert.equal(w.directCalls(), directBefore, 'the old token is not used after logout');
  assert.ok(events.includes('logout'));

  await assert.rejects(tb.login('alice', 'wrong'), (e) => e instanceof TinybirdBffError && !(e instanceof SignedOutError) && e.status === 401);
  const user = await tb.login('alice', 'alice-demo');
  assert.equal(user.id, 'alice');
  const loginCall = w.calls.findLast((c) => c.url === '/api/login');
  assert.equal(loginCall.headers.get('content-type'), 'application/json');
  assert.equal(loginCall.headers.get('x-bff-csrf'), '1');
  assert.equal((await tb.query('top_products')).path, 'direct');
});

test('a token request in flight during logout is dropped', async () => {
  const w = fakeWorld();
  let open;
  w.tokenGate = new Promise((r) => { open = r; });
  const tb = w.client();
  const pending = tb.query('top_products');
  await new Promise((r) => setTimeout(r, 5));
  const loggingOut = tb.logout();
  open();
  await loggingOut;
  await assert.rejects(pending, SignedOutError);
  assert.equal(tb.tokenInfo(), null);
});

test('long parameter lists are sent as a form POST on both paths', async () => {
  const w = fakeWorld();
  const ids = Array.from({ length: 600 }, (_, i) => `product-${i}`);
  const tb = w.client({ maxUrlLength: 4000 });
  await tb.query('top_products', { ids });
  const direct = w.calls.find((c) => c.url.startsWith(TB));
  assert.equal(direct.method, 'POST');
  assert.equal(direct.url, `${TB}/v0/pipes/top_products.json`);
  assert.equal(direct.headers.get('content-type'), 'application/x-www-form-urlencoded');
  assert.equal(new URLSearchParams(direct.body).getAll('ids').length, 600);
  await tb.query('top_products', { ids }, { path: 'proxy' });
  const proxy = w.calls.find((c) => c.url.startsWith('/api/pipes/'));
  assert.equal(proxy.method, 'POST');
  assert.equal(proxy.headers.get('x-bff-csrf'), '1');
});

test('queryText returns CSV and says which path served it', async () => {
  const w = fakeWorld();
  w.direct = (req) => new Response('"org_id"\n"acme"\n', { status: 200, headers: { 'Content-Type': 'text/csv' } });
  const tb = w.client();
  const res = await tb.queryText('top_products', {}, { format: 'csv' });
  assert.equal(res.path, 'direct');
  assert.equal(res.text, '"org_id"\n"acme"\n');
  assert.match(w.calls.at(-1).url, /top_products\.csv$/);
});

test('the fetch adapter serves @tinybirdco/sdk-style URLs through the current path', async () => {
  const w = fakeWorld();
  const tb = w.client();
  const res = await tb.fetch('https://api.tinybird.co/v0/pipes/top_products.json?limit=2&from=ts-sdk', {
    method: 'GET', headers: { Authorization: 'Bearer placeholder' },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), ROWS);
  const call = w.calls.at(-1);
  assert.equal(call.url, `${TB}/v0/pipes/top_products.json?limit=2&from=ts-sdk`);
  assert.equal(call.headers.get('authorization'), `Bearer ${w.tokensIssued[0]}`);
  tb.setMode('proxy');
  await tb.fetch(`${TB}/v0/pipes/top_products.json?limit=2`);
  assert.equal(w.calls.at(-1).url, '/api/pipes/top_products.json?limit=2');
  await assert.rejects(tb.fetch(`${TB}/v0/datasources`), TypeError);
});

test('the background timer refreshes before expiry without any query', async () => {
  const w = fakeWorld({ ttl: 3 });
  const tb = createClient({ fetch: w.fetch, autoRefresh: true, refreshMarginSeconds: 1 });
  w.serverNow = () => Math.floor(Date.now() / 1000);
  const refreshed = new Promise((resolve) => tb.on('token', (i) => { if (w.tokensIssued.length === 2) resolve(i); }));
  // The client's timer is unref'd (it must not keep a process alive), so hold the loop open here.
  const keepAlive = setInterval(() => {}, 1000);
  await tb.getToken();
  const first = tb.tokenInfo();
  const second = await refreshed;
  clearInterval(keepAlive);
  assert.notEqual(second.token, first.token);
  assert.ok(Date.now() / 1000 < first.expiresAt, 'refreshed before the old token expired');
  tb.close();
});

test('an aborted query rejects with the abort reason', async () => {
  const w = fakeWorld();
  w.direct = (req) => json(429, { error: 'x' }, { 'Retry-After': '5' });
  const tb = createClient({ fetch: w.fetch, autoRefresh: false });
  const ac = new AbortController();
  const p = tb.query('top_products', {}, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('user left')), 20);
  await assert.rejects(p, /user left/);
  assert.equal(w.proxyCalls(), 0);
});

test('helpers: JWT decoding, Retry-After, params', () => {
  assert.deepEqual(decodeJwtPayload(jwt({ name: 'ü', exp: 5 })), { name: 'ü', exp: 5 });
  assert.equal(decodeJwtPayload('not a jwt'), null);
  assert.equal(parseRetryAfter('3'), 3);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6);
  assert.equal(toSearchParams({ a: 1, b: [true, 'x'], c: null }).toString(), 'a=1&b=true&b=x');
  assert.throws(() => toSearchParams({ token: 'x' }), TypeError);
});

// ---- sql() ----

const COUNT = { meta: [{ name: 'n', type: 'UInt64' }], data: [{ n: '42' }], rows: 1 };

test('sql() goes direct to /v0/sql with the JWT, and to /api/sql with the cookie', async () => {
  const w = fakeWorld();
  w.direct = () => json(200, COUNT);
  w.proxy = () => json(200, COUNT);
  const queries = [];
  const tb = w.client({ onQuery: (e) => queries.push(e) });
  const direct = await tb.sql('SELECT count(*) AS n FROM orders');
  assert.equal(direct.path, 'direct');
  assert.deepEqual(direct.data, [{ n: '42' }]);
  assert.deepEqual(JSON.parse(JSON.stringify(direct)), COUNT);
  const call = w.calls.find((c) => c.url.startsWith(TB));
  assert.equal(call.url, `${TB}/v0/sql?q=SELECT+count%28*%29+AS+n+FROM+orders`);
  assert.equal(call.method, 'GET');
  assert.equal(call.headers.get('authorization'), `Bearer ${w.tokensIssued[0]}`);
  assert.deepEqual(tb.tokenInfo().datasources, ['orders']);

  const proxied = await tb.sql('SELECT count(*) AS n FROM orders', { path: 'proxy' });
  assert.equal(proxied.path, 'proxy');
  const pcall = w.calls.find((c) => c.url.startsWith('/api/sql'));
  assert.equal(pcall.url, '/api/sql?q=SELECT+count%28*%29+AS+n+FROM+orders');
  assert.equal(pcall.headers.get('authorization'), null, 'no token goes to the proxy');
  assert.equal(pcall.credentials, 'same-origin');
  assert.equal(w.tokenCalls(), 1);
  assert.deepEqual(queries.map((q) => [q.kind, q.pipe, q.path]), [['sql', 'sql', 'direct'], ['sql', 'sql', 'proxy']]);
  await assert.rejects(tb.sql('  '), TypeError);
});

test('long SQL is sent as a form POST on both paths', async () => {
  const w = fakeWorld();
  w.direct = () => json(200, COUNT);
  w.proxy = () => json(200, COUNT);
  const tb = w.client({ maxUrlLength: 200 });
  const q = `SELECT count(*) FROM orders WHERE customer IN (${Array.from({ length: 40 }, (_, i) => `'c${i}'`).join(', ')})`;
  await tb.sql(q, { path: 'direct' });
  await tb.sql(q, { path: 'proxy' });
  const [d, p] = [w.calls.find((c) => c.url.startsWith(TB)), w.calls.find((c) => c.url.startsWith('/api/sql'))];
  assert.deepEqual([d.method, d.url, p.method, p.url], ['POST', `${TB}/v0/sql`, 'POST', '/api/sql']);
  for (const c of [d, p]) {
    assert.equal(new URLSearchParams(c.body).get('q'), q);
    assert.equal(c.headers.get('content-type'), 'application/x-www-form-urlencoded');
  }
  assert.match(d.headers.get('authorization'), /^Bearer /);
  assert.equal(p.headers.get('x-bff-csrf'), '1', 'a cookie POST carries the CSRF header');
});

test('sql() refreshes once on 403, waits out 429s and falls back to the proxy like query()', async () => {
  const w = fakeWorld();
  const tb = w.client();
  await tb.getToken();
  const stale = w.tokensIssued[0];
  let limited = 1;
  w.direct = (req) => {
    if (req.headers.get('authorization') === `Bearer ${stale}`) return json(403, { error: 'expired' });
    if (limited-- > 0) return json(429, { error: 'slow down' }, { 'Retry-After': '2' });
    return json(200, COUNT);
  };
  const res = await tb.sql('SELECT count(*) AS n FROM orders');
  assert.deepEqual([res.path, res.retries, w.tokenCalls()], ['direct', 1, 2]);
  assert.deepEqual(w.sleeps, [2000]);

  w.direct = () => { throw new TypeError('Failed to fetch'); };
  w.proxy = () => json(200, COUNT);
  const fell = await tb.sql('SELECT count(*) AS n FROM orders');
  assert.deepEqual([fell.path, fell.fellBack], ['proxy', true]);

  w.proxy = () => json(403, { error: 'no grant gives you a data source' });
  await assert.rejects(tb.sql('SELECT 1', { path: 'proxy' }), (e) => e instanceof ForbiddenError && /data source/.test(e.message));
});

test('sql() with text: true returns a FORMAT CSV answer as text', async () => {
  const w = fakeWorld();
  w.direct = () => new Response('42\n', { status: 200, headers: { 'Content-Type': 'text/csv' } });
  const tb = w.client();
  const res = await tb.sql('SELECT count(*) FROM orders FORMAT CSV', { text: true });
  assert.deepEqual([res.text, res.path, res.status], ['42\n', 'direct', 200]);
  await assert.rejects(tb.sql('SELECT count(*) FROM orders FORMAT CSV'), (e) => e instanceof QueryError && /text: true/.test(e.message));
});

test('providers() lists the sign-in options', async () => {
  const w = fakeWorld();
  const tb = w.client();
  assert.deepEqual(await tb.providers(), { local: true, providers: [] });
  const google = { name: 'google', display_name: 'Google', login_url: '/auth/google/login' };
  w.providers = () => json(200, { local: false, providers: [google] });
  assert.deepEqual(await tb.providers(), { local: false, providers: [google] });
});
