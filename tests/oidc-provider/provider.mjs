// A real OpenID Provider for tinybird-bff's OIDC tests: panva/oidc-provider (OpenID
// Certified), configured with two clients, a few accounts, PKCE required, and JWT access
// tokens for one resource (the audience the BFF accepts bearer tokens for).
//
// Usage: node provider.mjs --port 0 --redirect-uri <bff callback> [--redirect-uri ...]
//                          [--post-logout-redirect-uri <url>]
// Prints one JSON line, {"issuer": "http://127.0.0.1:<port>"}, once it listens.
//
// Test-only endpoints under /dev/ (never part of a real provider):
//   GET  /dev/stats                 -> {"jwks_fetches": n}: how often /jwks was read
//   POST /dev/rotate                -> new signing keys under new kids (old ones still published)
//   POST /dev/jwks-fail {"on": bool} -> /jwks answers 503 while on
//   POST /dev/sign {"claims", "alg"?, "key"?, "header"?} -> {"token"}: signs arbitrary claims
//        with the provider's current key for alg (key "unknown": a key it never published;
//        key "hs256-public": HS256 with the RSA public key's PEM as secret, the key-confusion
//        attack; key "none": alg none)
//   POST /dev/tamper-id-token {"drop": [...], "set": {...}} -> the next token response's
//        id_token is re-signed (with the real key) without / with those claims
import http from 'node:http';
import { createPublicKey } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import { CompactSign, exportJWK, generateKeyPair, importJWK } from 'jose';

const args = process.argv.slice(2);
const arg = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const port = Number(arg('--port')[0] ?? 0);
const redirectUris = arg('--redirect-uri');
const postLogoutUris = arg('--post-logout-redirect-uri');

export const RESOURCE = 'https://api.tinybird-bff.test';
const NS = 'https://tinybird-bff.test/';

const ACCOUNTS = {
  alice: { name: 'Alice', org: { id: 'acme', name: 'Acme' }, [`${NS}tenant`]: 'acme', roles: ['viewer'] },
  bob: { name: 'Bob', org: { id: 'globex', name: 'Globex' }, [`${NS}tenant`]: 'globex', roles: ['viewer'] },
  root: { name: 'Root', org: { id: 'acme', name: 'Acme' }, [`${NS}tenant`]: 'acme', roles: ['viewer', 'admin'] },
  stranger: { name: 'No Roles', org: { id: 'initech', name: 'Initech' }, [`${NS}tenant`]: 'initech', roles: [] },
};

const stats = { jwks_fetches: 0 };
let jwksFailing = false;
let tamper = null;
let generation = 0;
let unknownKeys = 0;
let keys = [];

async function newKeys() {
  generation += 1;
  const make = async (alg, options) => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...options });
    return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: `${alg.toLowerCase()}-${generation}` };
  };
  return [await make('RS256'), await make('ES256'), await make('EdDSA', { crv: 'Ed25519' })];
}

function publicPem(jwk) {
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
}

async function sign(claims, alg = 'RS256', which = 'current', extraHeader = {}) {
  const payload = new TextEncoder().encode(JSON.stringify(claims));
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  if (which === 'none') {
    return `${b64({ alg: 'none', ...extraHeader })}.${Buffer.from(payload).toString('base64url')}.`;
  }
  if (which === 'hs256-public') {
    const rsa = keys.find((k) => k.alg === 'RS256');
    const secret = new TextEncoder().encode(publicPem(rsa));
    return new CompactSign(payload)
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid, ...extraHeader })
      .sign(secret);
  }
  let jwk = keys.find((k) => k.alg === alg);
  if (which === 'unknown') {
    const options = alg === 'EdDSA' ? { crv: 'Ed25519' } : {};
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...options });
    unknownKeys += 1;
    jwk = { ...(await exportJWK(privateKey)), kid: `unknown-${unknownKeys}` };
  }
  const key = await importJWK(jwk, alg);
  return new CompactSign(payload).setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT', ...extraHeader }).sign(key);
}

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'bff',
        client_secret: 'bff-secret',
        redirect_uris: redirectUris.length ? redirectUris : ['http://127.0.0.1/never'],
        post_logout_redirect_uris: postLogoutUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        // A single-page app that logs in itself and sends its access token to the BFF.
        client_id: 'spa',
        redirect_uris: ['http://localhost:1/spa-callback'],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'none',
      },
    ],
    jwks: { keys },
    cookies: { keys: ['tinybird-bff-test-cookie-key'] },
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'tenant', 'roles', 'pipes:read'],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      tenant: ['org', `${NS}tenant`],
      roles: ['roles'],
    },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...account }) };
    },
    async extraTokenClaims(ctx, token) {
      const account = token.kind === 'AccessToken' && ACCOUNTS[token.accountId];
      if (!account) return undefined;
      return { org: account.org, [`${NS}tenant`]: account[`${NS}tenant`], roles: account.roles };
    },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator) {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'pipes:read',
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  // Re-signs the next ID token with claims dropped or changed (nonce tests and friends).
  provider.use(async (ctx, next) => {
    await next();
    if (tamper && ctx.method === 'POST' && ctx.path === '/token' && ctx.body?.id_token) {
      const [, payload] = ctx.body.id_token.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      for (const name of tamper.drop ?? []) delete claims[name];
      Object.assign(claims, tamper.set ?? {});
      ctx.body = { ...ctx.body, id_token: await sign(claims, 'RS256') };
      tamper = null;
    }
  });
  return provider;
}

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body ? JSON.parse(body) : {};
}

keys = await newKeys();
let current;
let handle;
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const reply = (status, json) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  };
  try {
    if (url.pathname.startsWith('/dev/')) {
      const body = req.method === 'POST' ? await readJson(req) : {};
      switch (url.pathname) {
        case '/dev/stats':
          return reply(200, stats);
        case '/dev/rotate':
          keys = [...(await newKeys()), ...keys];
          current = build(current.issuer);
          handle = current.callback();
          return reply(200, { kids: keys.map((k) => k.kid) });
        case '/dev/jwks-fail':
          jwksFailing = Boolean(body.on);
          return reply(200, { failing: jwksFailing });
        case '/dev/sign':
          return reply(200, { token: await sign(body.claims, body.alg, body.key, body.header) });
        case '/dev/tamper-id-token':
          tamper = body;
          return reply(200, { armed: true });
        default:
          return reply(404, { error: 'no such dev endpoint' });
      }
    }
    if (url.pathname === '/jwks') {
      stats.jwks_fetches += 1;
      if (jwksFailing) return reply(503, { error: 'jwks down (test switch)' });
    }
    return handle(req, res);
  } catch (e) {
    return reply(500, { error: String(e?.stack ?? e) });
  }
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  current = build(issuer);
  handle = current.callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The test harness owns this process: exit with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
