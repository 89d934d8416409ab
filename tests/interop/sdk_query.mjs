// Tinybird's official TypeScript SDK (@tinybirdco/sdk) against the local endpoint.
//
// Proves that an existing SDK user only has to change the base URL: it queries a pipe with
// `createTinybirdApi({ baseUrl, token }).query(...)`, asks the Token API for a JWT with
// `createJWT(...)` (the SDK's `POST /v0/tokens/?expiration_time=`), queries with that JWT, and
// records how the SDK surfaces a 403. Driven by tests/api/interop.rs, which asserts on the
// single JSON line printed here.
//
// Env: TB_BASE_URL (local endpoint), TB_TOKEN (a JWT for top_products), TB_ADMIN_TOKEN (the
// workspace admin token, for createJWT). Secrets come from env, never argv.

import { createJWT, createTinybirdApi } from "@tinybirdco/sdk";

const baseUrl = process.env.TB_BASE_URL;
const token = process.env.TB_TOKEN;
const admin = process.env.TB_ADMIN_TOKEN;
if (!baseUrl || !token || !admin) {
  console.error("set TB_BASE_URL, TB_TOKEN and TB_ADMIN_TOKEN");
  process.exit(2);
}

const out = {};

// The JWT fixes org_id; the SDK sends another one, which must be ignored.
const api = createTinybirdApi({ baseUrl, token });
out.query = await api.query("top_products", { org_id: "acme", limit: 5 });

// A pipe outside the JWT's scopes: the SDK throws TinybirdApiError with the status.
try {
  await api.query("orgs_overview");
  out.forbidden = { status: 200 };
} catch (error) {
  out.forbidden = { status: error.statusCode, message: error.message };
}

// The Token API, as the SDK's createJWT calls it, then a query with the minted token.
const created = await createJWT(
  { baseUrl, token: admin },
  {
    name: "sdk-interop",
    expiresAt: new Date(Date.now() + 10 * 60 * 1000),
    scopes: [{ type: "PIPES:READ", resource: "recent_orders", fixed_params: { org_id: "initech" } }],
    limits: { rps: 50 },
  },
);
out.created_token = created.token;
out.created_query = await createTinybirdApi({ baseUrl, token: created.token }).query("recent_orders", {
  org_id: "acme",
  limit: 7,
});

console.log(JSON.stringify(out));
