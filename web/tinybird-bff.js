/**
 * tinybird-bff browser client: query Tinybird pipes from the browser through a
 * tinybird-bff server, either **direct** (the browser holds a short-lived,
 * row-filtered Tinybird JWT minted by the BFF and calls Tinybird itself) or
 * through the **proxy** (the BFF calls Tinybird with the session cookie; no
 * token ever reaches the browser).
 *
 * Why a client at all: the failure modes of the direct pattern are all on the
 * browser side (tokens never refreshed, refresh storms, a skewed laptop clock,
 * a CORS or ad-blocker failure, 429s), so they are handled once, here.
 *
 * Dependency-free ES module; works in browsers and in Node 18+ (global fetch).
 *
 * @example
 * import { createClient, SignedOutError } from './tinybird-bff.js';
 * const tb = createClient({ bff: '/api' });
 * const res = await tb.query('top_products', { limit: 10 });
 * console.log(res.path, res.data); // 'direct' | 'proxy', rows as Tinybird sent them
 * const n = await tb.sql('SELECT count(*) AS n FROM orders'); // SQL over data sources, row-filtered
 *
 * @module tinybird-bff
 */

/** @typedef {'auto'|'direct'|'proxy'} Mode */
/** @typedef {'direct'|'proxy'} Path */

/**
 * @typedef {object} ClientOptions
 * @property {string} [bff='/api'] Base URL of the BFF API: a path on the page's origin, or another origin listed in the BFF's `[cors] allowed_origins` (docs/cross-origin.md).
 * @property {RequestCredentials} [credentials] Cookies on calls to the BFF: `'include'` when `bff` is on another origin than the page, else `'same-origin'`.
 * @property {Mode} [mode='auto'] `auto` tries direct and falls back to the proxy; `direct`/`proxy` force one path.
 * @property {number} [proxyStickySeconds=60] After a direct network failure, how long `auto` keeps using the proxy before probing direct again.
 * @property {number} [refreshMarginSeconds] Refresh the token when fewer seconds than this remain (server clock). Default: a quarter of the token's lifetime, between 2 and 60 s.
 * @property {boolean} [autoRefresh=true] Also refresh in the background just before the margin, so an idle page never holds an expired token.
 * @property {number} [maxRetries=3] Retries per query on 429/502/503/504 (each path).
 * @property {number} [maxRetryDelayMs=10000] The longest one retry waits; a Retry-After asking for longer is a final answer (thrown at once, with `retryAfter` and `resetAt`).
 * @property {number} [retryBaseMs=250] First backoff step; doubles on each retry. On direct calls this backoff is all there is: Tinybird's CORS exposes no `Retry-After` to the page.
 * @property {number} [maxUrlLength=4000] Longer GET URLs are sent as a form POST instead.
 * @property {typeof fetch} [fetch] fetch implementation (tests inject a fake).
 * @property {() => number} [now=Date.now] Local clock in ms (tests inject a fake).
 * @property {(ms: number, signal?: AbortSignal) => Promise<void>} [sleep] Waits between retries (tests inject a fake).
 * @property {(info: TokenInfo) => void} [onTokenRefresh] Shortcut for `on('token', fn)`.
 * @property {(e: FallbackEvent) => void} [onFallback] Shortcut for `on('fallback', fn)`.
 * @property {(e: {reason: string}) => void} [onSignedOut] Shortcut for `on('signedout', fn)`.
 * @property {(e: QueryEvent) => void} [onQuery] Shortcut for `on('query', fn)`.
 */

/**
 * @typedef {object} TokenInfo
 * @property {string} token The JWT itself (visible to any script on the page: that is the direct path's trade-off).
 * @property {string} name The JWT `name` claim (Tinybird's rate-limit and usage key).
 * @property {object} claims The decoded JWT payload (not verified: the browser has no key, Tinybird verifies).
 * @property {string} host Tinybird base URL the token is for.
 * @property {string[]} pipes Pipes the token may read.
 * @property {string[]} datasources Data sources the token may read with SQL (each through its row filter).
 * @property {number} expiresAt Unix seconds, server clock.
 * @property {number} expiresIn Lifetime in seconds as minted.
 * @property {number} serverOffsetMs Server clock minus local clock, measured at fetch.
 * @property {number} secondsLeft Seconds until expiry by the server's clock, now.
 * @property {number} refreshAt Unix seconds (server clock) at which the client refreshes it.
 */

/**
 * @typedef {object} FallbackEvent
 * @property {string} pipe The pipe whose query failed on the direct path (`sql` for {@link TinybirdBffClient#sql}).
 * @property {'pipe'|'sql'} kind What was asked.
 * @property {string} reason Why (the network error's message).
 * @property {number} until Local ms timestamp until which `auto` uses the proxy.
 */

/**
 * @typedef {object} QueryEvent
 * @property {string} pipe The pipe, or `sql` for {@link TinybirdBffClient#sql}.
 * @property {'pipe'|'sql'} kind What was asked.
 * @property {Path} path Which path served the final answer.
 * @property {number} status HTTP status of the final answer.
 * @property {number} elapsedMs Wall time including retries and fallback.
 * @property {number} retries 429/5xx retries done.
 * @property {boolean} fellBack True when the direct path failed and the proxy answered.
 */

/** Base class of every error this client throws; `status` is 0 for network errors. */
export class TinybirdBffError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, path?: Path|'bff'|null, body?: any, retryAfter?: number|null, resetAt?: number|null, cause?: unknown}} [details]
   */
  constructor(message, { status = 0, path = null, body = null, retryAfter = null, resetAt = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** HTTP status, or 0 when no response arrived. */
    this.status = status;
    /** Which hop failed: `direct` (Tinybird), `proxy`, or `bff` (login/token routes). */
    this.path = path;
    /** Parsed error body (`{"error": "..."}`) when there was one. */
    this.body = body;
    /** Seconds the server asked us to wait (429), if it said. */
    this.retryAfter = retryAfter;
    /** When that wait ends: Unix seconds by this browser's clock, or null. */
    this.resetAt = resetAt;
  }
}

/** The BFF session is gone (logged out, expired, or never logged in): show the login form. */
export class SignedOutError extends TinybirdBffError {}
/** 403: the user has no grant for this pipe (or Tinybird still refuses after a token refresh). */
export class ForbiddenError extends TinybirdBffError {}
/**
 * 429 after all retries, or at once when `Retry-After` asks for a longer wait than one retry
 * may take (`maxRetryDelayMs`): a spent budget or a lockout is a final answer, not a hiccup.
 * `retryAfter` and `resetAt` say how long the server wanted, when it said.
 */
export class RateLimitedError extends TinybirdBffError {}
/** No response: CORS failure, blocked host, DNS, connection refused, offline. */
export class NetworkError extends TinybirdBffError {}
/**
 * The BFF answers, but not to this page: it is on another origin that the BFF's
 * `[cors] allowed_origins` does not list, so the browser hid the answer.
 */
export class CorsError extends NetworkError {}
/** Any other non-2xx answer (400 bad parameter, 404 unknown pipe, 408 timeout, 5xx). */
export class QueryError extends TinybirdBffError {}

const RETRYABLE = new Set([429, 502, 503, 504]);
const MODES = ['auto', 'direct', 'proxy'];
const FORMATS = ['json', 'csv', 'ndjson'];
const PIPE_URL = /\/v0\/pipes\/([^/?#]+)\.(json|csv|ndjson)$/;

/**
 * Decodes a JWT's payload without verifying it (only Tinybird can verify it).
 * @param {string} jwt
 * @returns {object|null} the claims, or null when `jwt` is not a JWT
 */
export function decodeJwtPayload(jwt) {
  const part = typeof jwt === 'string' ? jwt.split('.')[1] : undefined;
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/**
 * Reads a Retry-After header: delay-seconds or an HTTP date.
 * @param {string|null} value
 * @param {number} nowMs local clock, for the HTTP-date form
 * @returns {number|null} seconds to wait, or null when absent/unreadable
 */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value == null || value.trim() === '') return null;
  const secs = Number(value.trim());
  if (Number.isFinite(secs)) return Math.max(0, secs);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - nowMs) / 1000);
}

/**
 * Turns a params object into Tinybird query parameters: arrays repeat the key,
 * `null`/`undefined` are left out, everything else goes through `String()`.
 * @param {Record<string, unknown>|URLSearchParams} [params]
 * @returns {URLSearchParams}
 */
export function toSearchParams(params) {
  const sp = new URLSearchParams(params instanceof URLSearchParams ? params : undefined);
  if (!(params instanceof URLSearchParams)) {
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value === undefined || value === null) continue;
      for (const v of Array.isArray(value) ? value : [value]) sp.append(key, String(v));
    }
  }
  // The client owns authentication; a token in the URL would also end up in logs.
  if (sp.has('token')) throw new TypeError('Do not pass a "token" parameter: the client authenticates each request itself.');
  return sp;
}

/**
 * Creates a client. Nothing is fetched until the first query.
 * @param {ClientOptions} [options]
 * @returns {TinybirdBffClient}
 */
export function createClient(options = {}) {
  return new TinybirdBffClient(options);
}

/** A Tinybird client bound to one BFF. Create it with {@link createClient}. */
export class TinybirdBffClient {
  #o;
  #mode;
  #token = null; // {token, name, claims, host, pipes, expiresAt, expiresIn, serverOffsetMs}
  #refreshing = null; // the one token request in flight, shared by every waiter
  #generation = 0; // bumped on login/logout so a late token answer is dropped
  #directDownUntil = 0;
  #timer = null;
  #listeners = new Map();
  #crossOrigin = false; // the BFF is on another origin than the page
  #credentials = 'same-origin';

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    this.#o = {
      bff: '/api',
      proxyStickySeconds: 60,
      autoRefresh: true,
      maxRetries: 3,
      maxRetryDelayMs: 10_000,
      retryBaseMs: 250,
      maxUrlLength: 4000,
      now: () => Date.now(),
      sleep: defaultSleep,
      ...options,
    };
    this.#o.bff = this.#o.bff.replace(/\/+$/, '');
    this.#crossOrigin = isCrossOrigin(this.#o.bff);
    this.#credentials = options.credentials ?? (this.#crossOrigin ? 'include' : 'same-origin');
    this.#mode = checkMode(options.mode ?? 'auto');
    const shortcuts = { onTokenRefresh: 'token', onFallback: 'fallback', onSignedOut: 'signedout', onQuery: 'query' };
    for (const [opt, event] of Object.entries(shortcuts)) if (options[opt]) this.on(event, options[opt]);
    /**
     * A fetch-compatible function for code that speaks Tinybird's URL scheme
     * (e.g. `@tinybirdco/sdk`): it takes `…/v0/pipes/<pipe>.<json|csv|ndjson>` URLs
     * on any host and sends them through the current path, with the token,
     * refresh, retry and fallback rules of {@link TinybirdBffClient#query}.
     * Non-2xx answers come back as Responses; only signed-out/network errors reject.
     * @type {(input: string|URL|Request, init?: RequestInit) => Promise<Response>}
     */
    this.fetch = (input, init) => this.#sdkFetch(input, init);
  }

  /**
   * Subscribes to an event: `token` (TokenInfo, after every fetch/refresh),
   * `fallback` (FallbackEvent), `recovered` (direct works again), `signedout`
   * ({reason}), `query` (QueryEvent), `retry` ({path, status, delayMs, attempt}),
   * `mode` ({mode}), `error` (a background refresh failed).
   * @param {string} event
   * @param {(detail: any) => void} fn
   * @returns {() => void} unsubscribe
   */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.#listeners.get(event)?.delete(fn);
  }

  /** @returns {Mode} the configured mode */
  getMode() {
    return this.#mode;
  }

  /**
   * Forces a path (`direct`, `proxy`) or lets the client choose (`auto`).
   * Switching also forgets a previous fallback, so `auto` probes direct at once.
   * @param {Mode} mode
   */
  setMode(mode) {
    this.#mode = checkMode(mode);
    this.#directDownUntil = 0;
    this.#schedule();
    this.#emit('mode', { mode: this.#mode });
  }

  /**
   * Which path `auto` would take now, and until when the proxy is preferred.
   * @returns {{mode: Mode, next: Path, proxyUntil: number|null}}
   */
  state() {
    const down = this.#o.now() < this.#directDownUntil;
    const next = this.#mode === 'auto' ? (down ? 'proxy' : 'direct') : this.#mode;
    return { mode: this.#mode, next, proxyUntil: down ? this.#directDownUntil : null };
  }

  /**
   * Runs a pipe and returns Tinybird's JSON body untouched (`meta`, `data`,
   * `rows`, `rows_before_limit_at_least`, `statistics`) with these
   * non-enumerable properties added (so `JSON.stringify` still gives Tinybird's body):
   * `path` ('direct'|'proxy'), `elapsedMs`, `retries`, `fellBack`.
   * Note Tinybird quotes 64-bit integers: `Number(row.units)`.
   * @param {string} pipe pipe name
   * @param {Record<string, unknown>} [params] pipe parameters; arrays repeat the key
   * @param {{path?: Path, signal?: AbortSignal}} [opts] `path` forces one path for this call only
   * @returns {Promise<object>}
   * @throws {SignedOutError|ForbiddenError|RateLimitedError|NetworkError|QueryError}
   */
  async query(pipe, params = {}, opts = {}) {
    const r = await this.#execute(pipeTarget(pipe, 'json'), toSearchParams(params), opts);
    const body = await readBody(r.response);
    if (!r.response.ok) throw errorFor(r.response, body, r.path, this.#o.now());
    if (body === null || typeof body !== 'object') {
      throw new QueryError(`Expected JSON from ${r.path} for pipe "${pipe}", got something else.`, {
        status: r.response.status, path: r.path,
      });
    }
    return decorate(body, r);
  }

  /**
   * Like {@link TinybirdBffClient#query} for `csv` or `ndjson`: resolves to
   * `{text, path, status, elapsedMs, retries, fellBack}`.
   * @param {string} pipe
   * @param {Record<string, unknown>} [params]
   * @param {{format?: 'csv'|'ndjson'|'json', path?: Path, signal?: AbortSignal}} [opts]
   */
  async queryText(pipe, params = {}, opts = {}) {
    const format = opts.format ?? 'csv';
    if (!FORMATS.includes(format)) throw new TypeError(`Unknown format "${format}"; use one of ${FORMATS.join(', ')}.`);
    const r = await this.#execute(pipeTarget(pipe, format), toSearchParams(params), opts);
    return textResult(r);
  }

  /**
   * Runs SQL over the data sources the user's grants give (`SELECT count(*) FROM orders`),
   * each read through its row filter: Tinybird applies the filter from the JWT's
   * `DATASOURCES:READ` scopes on the direct path (`GET {host}/v0/sql?q=` with the JWT), and
   * on the proxy path (`GET /api/sql?q=` with the session cookie) the BFF calls Tinybird with
   * the user's own JWT. Long queries go as a form `POST`. Same token refresh, 403 refresh-and-
   * retry, 429/5xx retries and fallback to the proxy as {@link TinybirdBffClient#query}.
   *
   * Resolves to Tinybird's JSON body decorated like `query()`'s (`path`, `elapsedMs`,
   * `retries`, `fellBack`). With `text: true` it resolves to `{text, path, status, ...}`
   * instead, for a query ending in `FORMAT CSV`, `CSVWithNames` or `JSONEachRow`.
   * @param {string} query one SQL statement, optionally ending in a `FORMAT` clause
   * @param {{path?: Path, signal?: AbortSignal, text?: boolean}} [opts] `path` forces one path for this call only
   * @returns {Promise<object>}
   * @throws {SignedOutError|ForbiddenError|RateLimitedError|NetworkError|QueryError} 403 when the user may read no data source (or not that one)
   */
  async sql(query, opts = {}) {
    if (typeof query !== 'string' || query.trim() === '') throw new TypeError('query must be a non-empty SQL string');
    const r = await this.#execute(SQL_TARGET, new URLSearchParams({ q: query }), opts);
    if (opts.text) return textResult(r);
    const body = await readBody(r.response);
    if (!r.response.ok) throw errorFor(r.response, body, r.path, this.#o.now());
    if (body === null || typeof body !== 'object') {
      throw new QueryError(`Expected JSON from ${r.path} for the SQL query, got something else: for a FORMAT other than JSON, pass { text: true }.`, {
        status: r.response.status, path: r.path,
      });
    }
    return decorate(body, r);
  }

  /**
   * A valid JWT for your own Tinybird calls (fetched or refreshed if needed).
   * @returns {Promise<string>}
   */
  async getToken() {
    return (await this.#freshToken()).token;
  }

  /**
   * Fetches a new token now, even if the current one is still fresh.
   * Concurrent calls share one request.
   * @returns {Promise<TokenInfo>}
   */
  async refreshToken() {
    await this.#refresh(this.#token?.token ?? null);
    return this.tokenInfo();
  }

  /**
   * The current token's details for display, or null before the first fetch
   * and after logout. `secondsLeft` uses the server's clock.
   * @returns {TokenInfo|null}
   */
  tokenInfo() {
    const t = this.#token;
    if (!t) return null;
    const serverNow = (this.#o.now() + t.serverOffsetMs) / 1000;
    return {
      ...t,
      claims: { ...t.claims },
      pipes: [...t.pipes],
      datasources: [...t.datasources],
      secondsLeft: Math.max(0, t.expiresAt - serverNow),
      refreshAt: t.expiresAt - this.#margin(t),
    };
  }

  /**
   * Logs in with the BFF's local users (`POST {bff}/login`).
   * @param {string} username
   * @param {string} password
   * @returns {Promise<object>} the user
   * @throws {TinybirdBffError} 401 wrong credentials; {@link RateLimitedError} when throttled
   */
  async login(username, password) {
    const res = await this.#bff('POST', '/login', { username, password });
    const body = await readBody(res);
    if (!res.ok) {
      if (res.status === 401) {
        throw new TinybirdBffError(body?.error ?? 'Wrong username or password.', { status: 401, path: 'bff', body });
      }
      throw errorFor(res, body, 'bff', this.#o.now());
    }
    this.#forget();
    this.#directDownUntil = 0;
    return body?.user ?? body;
  }

  /**
   * Ends the BFF session and forgets the token. The JWT itself stays valid at
   * Tinybird until it expires (JWTs cannot be revoked): keep TTLs short.
   * Later queries fail with {@link SignedOutError} until {@link TinybirdBffClient#login}.
   * After an OIDC login the BFF may answer with the provider's end-session URL: it is
   * returned, and the page should navigate there to end the provider's session too.
   * @returns {Promise<string|undefined>} the provider's logout URL, if any
   */
  async logout() {
    try {
      const res = await this.#bff('POST', '/logout');
      if (!res.ok && res.status !== 401) throw errorFor(res, await readBody(res), 'bff', this.#o.now());
      if (res.status === 200) return (await readBody(res))?.redirect;
      return undefined;
    } finally {
      this.#forget();
      this.#emit('signedout', { reason: 'logout' });
    }
  }

  /**
   * How users may sign in (`GET {bff}/providers`): `local` says whether the password form
   * applies; each provider's `login_url` starts its sign-in (add `?return_to=/path`).
   * @returns {Promise<{local: boolean, providers: {name: string, display_name: string, login_url: string}[]}>}
   */
  async providers() {
    const res = await this.#bff('GET', '/providers');
    const body = await readBody(res);
    if (!res.ok) throw errorFor(res, body, 'bff', this.#o.now());
    return { local: body?.local !== false, providers: Array.isArray(body?.providers) ? body.providers : [] };
  }

  /**
   * The signed-in user, their pipes (with fixed params) and data sources (with filters)
   * (`GET {bff}/me`).
   * @returns {Promise<{user: object, pipes: object[], datasources: object[]}>}
   * @throws {SignedOutError} when nobody is signed in
   */
  async me() {
    const res = await this.#bff('GET', '/me');
    const body = await readBody(res);
    if (!res.ok) throw errorFor(res, body, 'bff', this.#o.now());
    return body;
  }

  /** Stops the background refresh timer (call when throwing the client away). */
  close() {
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  // ---- internals ----

  /** Runs one read on the chosen path. `target`: {kind, label, direct, proxy} (URL paths). */
  async #execute(target, sp, { path: forced, signal } = {}) {
    const { kind, label: pipe } = target;
    const started = this.#o.now();
    const stats = { retries: 0, fellBack: false };
    const path = forced ? checkPath(forced) : this.#mode === 'auto' ? this.state().next : this.#mode;
    let response;
    let used = path;
    if (path === 'proxy') {
      response = await this.#viaProxy(target, sp, signal, stats);
    } else {
      try {
        response = await this.#viaDirect(target, sp, signal, stats);
        if (this.#mode === 'auto' && !forced && this.#directDownUntil) {
          this.#directDownUntil = 0;
          this.#emit('recovered', { pipe, kind });
        }
      } catch (err) {
        // Only a failure the proxy can route around: the browser could not reach
        // Tinybird at all. Tinybird's own answers (400, 403, 5xx) are the same via the proxy.
        const canFallBack = err instanceof NetworkError && err.path === 'direct';
        if (forced || this.#mode !== 'auto' || !canFallBack || signal?.aborted) throw err;
        this.#directDownUntil = this.#o.now() + this.#o.proxyStickySeconds * 1000;
        this.#emit('fallback', { pipe, kind, reason: err.cause?.message ?? err.message, until: this.#directDownUntil });
        stats.fellBack = true;
        used = 'proxy';
        response = await this.#viaProxy(target, sp, signal, stats);
      }
    }
    const result = { response, path: used, elapsedMs: this.#o.now() - started, ...stats };
    this.#emit('query', { pipe, kind, path: used, status: response.status, elapsedMs: result.elapsedMs, retries: stats.retries, fellBack: stats.fellBack });
    return result;
  }

  async #viaDirect(target, sp, signal, stats) {
    let refreshedOnce = false;
    for (let attempt = 1; ; attempt++) {
      const tok = await abortable(this.#freshToken(), signal);
      const url = `${tok.host.replace(/\/+$/, '')}${target.direct}`;
      const res = await this.#send('direct', url, sp, { Authorization: `Bearer ${tok.token}` }, 'omit', signal);
      // 403 is how Tinybird says "expired / not in scope"; a fresh token fixes the
      // first (and a grant added since the last mint), so try exactly once more.
      if ((res.status === 403 || res.status === 401) && !refreshedOnce) {
        refreshedOnce = true;
        await discard(res);
        await abortable(this.#refresh(tok.token), signal);
        continue;
      }
      if (await this.#waitBeforeRetry(res, 'direct', attempt, stats, signal)) continue;
      return res;
    }
  }

  async #viaProxy(target, sp, signal, stats) {
    const url = `${this.#o.bff}${target.proxy}`;
    for (let attempt = 1; ; attempt++) {
      const res = await this.#send('proxy', url, sp, { 'X-BFF-CSRF': '1' }, this.#credentials, signal);
      if (res.status === 401) this.#signedOut('proxy-401');
      if (await this.#waitBeforeRetry(res, 'proxy', attempt, stats, signal)) continue;
      return res;
    }
  }

  async #send(path, url, sp, headers, credentials, signal) {
    const qs = sp.toString();
    const long = url.length + qs.length + 1 > this.#o.maxUrlLength;
    const init = long
      ? { method: 'POST', body: qs, headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' } }
      : { method: 'GET', headers: path === 'proxy' ? {} : headers };
    try {
      return await this.#fetch(long || !qs ? url : `${url}?${qs}`, { ...init, credentials, signal });
    } catch (err) {
      if (signal?.aborted || err?.name === 'AbortError') throw err;
      if (path === 'proxy') throw await this.#unreachable(url, err, path);
      throw new NetworkError(`Could not reach Tinybird at ${originOf(url)}: ${err?.message ?? err}`, { path, cause: err });
    }
  }

  async #waitBeforeRetry(res, path, attempt, stats, signal) {
    if (!RETRYABLE.has(res.status) || stats.retries >= this.#o.maxRetries) return false;
    const retryAfter = parseRetryAfter(res.headers.get('Retry-After'), this.#o.now());
    // Asked to wait longer than any retry may: a budget spent until midnight, a lockout.
    // Waiting the capped time and asking again would only repeat the refusal (and spin the
    // page for half a minute): it is the answer, surfaced at once with its reset time.
    if (retryAfter != null && retryAfter * 1000 > this.#o.maxRetryDelayMs) return false;
    const backoff = this.#o.retryBaseMs * 2 ** stats.retries;
    const delayMs = Math.min(this.#o.maxRetryDelayMs, Math.max(backoff, (retryAfter ?? 0) * 1000));
    await discard(res);
    stats.retries++;
    this.#emit('retry', { path, status: res.status, delayMs, attempt, retryAfter });
    await this.#o.sleep(delayMs, signal);
    return true;
  }

  async #freshToken() {
    const t = this.#token;
    if (t && this.tokenInfo().secondsLeft > this.#margin(t)) return t;
    return this.#refresh(t?.token ?? null);
  }

  /** Replaces `stale` (or fetches the first token); shares one request among all callers. */
  #refresh(stale) {
    if (this.#token && this.#token.token !== stale && this.tokenInfo().secondsLeft > 0) {
      return Promise.resolve(this.#token); // someone else already replaced it
    }
    if (this.#refreshing) return this.#refreshing;
    const generation = this.#generation;
    const p = this.#fetchToken(generation).finally(() => {
      if (this.#refreshing === p) this.#refreshing = null;
    });
    this.#refreshing = p;
    return p;
  }

  async #fetchToken(generation) {
    for (let attempt = 1, stats = { retries: 0 }; ; attempt++) {
      const sent = this.#o.now();
      const res = await this.#bff('POST', '/token');
      const received = this.#o.now();
      if (await this.#waitBeforeRetry(res, 'bff', attempt, stats)) continue;
      const body = await readBody(res);
      if (res.status === 401) {
        this.#signedOut('token-401');
        throw errorFor(res, body, 'bff', this.#o.now());
      }
      if (!res.ok) throw errorFor(res, body, 'bff', this.#o.now());
      if (generation !== this.#generation) throw new SignedOutError('Signed out while a token was being fetched.', { status: 401, path: 'bff' });
      if (!body || typeof body.token !== 'string' || !Number.isFinite(body.expires_at) || typeof body.host !== 'string') {
        throw new TinybirdBffError('The BFF token response lacks token, expires_at or host.', { status: res.status, path: 'bff', body });
      }
      const claims = decodeJwtPayload(body.token) ?? {};
      // server_time is whole seconds; the midpoint of the request is our best local match.
      const serverTime = Number.isFinite(body.server_time) ? body.server_time : (sent + received) / 2000;
      this.#token = {
        token: body.token,
        name: body.name ?? claims.name ?? '',
        claims,
        host: body.host,
        pipes: Array.isArray(body.pipes) ? body.pipes : scopeResources(claims, (t) => t !== 'DATASOURCES:READ'),
        datasources: Array.isArray(body.datasources) ? body.datasources : scopeResources(claims, (t) => t === 'DATASOURCES:READ'),
        expiresAt: body.expires_at,
        expiresIn: Number.isFinite(body.expires_in) ? body.expires_in : body.expires_at - serverTime,
        serverOffsetMs: serverTime * 1000 - (sent + received) / 2,
      };
      this.#schedule();
      this.#emit('token', this.tokenInfo());
      return this.#token;
    }
  }

  #margin(t) {
    if (Number.isFinite(this.#o.refreshMarginSeconds)) return this.#o.refreshMarginSeconds;
    return Math.min(60, Math.max(2, t.expiresIn / 4));
  }

  #schedule() {
    clearTimeout(this.#timer);
    this.#timer = null;
    const t = this.#token;
    if (!this.#o.autoRefresh || !t || this.#mode === 'proxy') return;
    // Fire just before the margin so the next query finds a fresh token waiting.
    const ms = Math.max(1000, (this.tokenInfo().secondsLeft - this.#margin(t)) * 1000 - 500);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#token !== t) return;
      this.#refresh(t.token).catch((error) => this.#emit('error', { error }));
    }, ms);
    this.#timer?.unref?.(); // never keep a Node process alive just for this
  }

  #forget() {
    this.#generation++;
    this.#token = null;
    this.#refreshing = null;
    this.close();
  }

  /** The BFF answered 401: the session is gone, so is any reason to keep its token. */
  #signedOut(reason) {
    this.#forget();
    this.#emit('signedout', { reason });
  }

  #bff(method, route, json) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-BFF-CSRF'] = '1';
    if (json !== undefined) headers['Content-Type'] = 'application/json';
    const init = { method, headers, credentials: this.#credentials };
    if (json !== undefined) init.body = JSON.stringify(json);
    return this.#fetch(this.#o.bff + route, init).catch(async (err) => {
      throw await this.#unreachable(this.#o.bff + route, err, 'bff');
    });
  }

  /**
   * Why a call to the BFF got no readable answer. A browser reports a CORS refusal exactly
   * like a network failure, so on another origin ask again without CORS (no cookie, nothing
   * readable, no side effect): if that gets an answer, the BFF is up and refused this page.
   */
  async #unreachable(url, err, path) {
    const page = globalThis.location?.origin;
    if (this.#crossOrigin) {
      const answered = await this.#fetch(url, { method: 'GET', mode: 'no-cors', credentials: 'omit' }).then(() => true, () => false);
      if (answered) {
        return new CorsError(`The BFF at ${originOf(url)} answered but its CORS policy does not allow this page's origin (${page}): add "${page}" to [cors] allowed_origins in the BFF's config (docs/cross-origin.md).`, { path, cause: err });
      }
    }
    const where = path === 'proxy' ? 'the BFF proxy' : 'the BFF';
    const at = /^https?:/i.test(url) ? ` at ${originOf(url)}` : '';
    return new NetworkError(`Could not reach ${where}${at}: ${err?.message ?? err}`, { path, cause: err });
  }

  #fetch(url, init) {
    // Called with globalThis as `this`: a bare `window.fetch` reference throws "Illegal invocation" otherwise.
    return (this.#o.fetch ?? globalThis.fetch).call(globalThis, url, init);
  }

  async #sdkFetch(input, init = {}) {
    const req = typeof input === 'object' && 'url' in input ? input : null;
    const url = new URL(String(req ? req.url : input), 'http://placeholder.invalid');
    const m = PIPE_URL.exec(url.pathname);
    const method = (init.method ?? req?.method ?? 'GET').toUpperCase();
    if (!m || (method !== 'GET' && method !== 'POST')) {
      throw new TypeError(`tinybird-bff fetch only serves pipe reads (…/v0/pipes/<pipe>.json), not ${method} ${url.pathname}`);
    }
    const sp = new URLSearchParams(url.search);
    const body = init.body ?? (req && method === 'POST' ? await req.text() : null);
    if (method === 'POST' && body) for (const [k, v] of new URLSearchParams(String(body))) sp.append(k, v);
    sp.delete('token'); // the caller's token (an SDK placeholder) is replaced by ours
    const r = await this.#execute(pipeTarget(decodeURIComponent(m[1]), m[2]), sp, { signal: init.signal ?? req?.signal });
    return r.response;
  }

  #emit(event, detail) {
    for (const fn of this.#listeners.get(event) ?? []) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`tinybird-bff: a "${event}" listener threw`, err);
      }
    }
  }
}

/** Where a pipe read goes on each path (URL paths under the Tinybird host and the BFF base). */
function pipeTarget(pipe, format) {
  if (typeof pipe !== 'string' || pipe === '') throw new TypeError('pipe must be a non-empty string');
  const file = `${encodeURIComponent(pipe)}.${format}`;
  return { kind: 'pipe', label: pipe, direct: `/v0/pipes/${file}`, proxy: `/pipes/${file}` };
}

/** Where SQL goes: Tinybird's `/v0/sql`, or the BFF's `/api/sql` (which calls it with the user's JWT). */
const SQL_TARGET = Object.freeze({ kind: 'sql', label: 'sql', direct: '/v0/sql', proxy: '/sql' });

function scopeResources(claims, typeMatches) {
  return (claims.scopes ?? []).filter((s) => typeMatches(s.type)).map((s) => s.resource);
}

async function textResult(r) {
  if (!r.response.ok) throw errorFor(r.response, await readBody(r.response), r.path);
  const { path, elapsedMs, retries, fellBack } = r;
  return { text: await r.response.text(), path, status: r.response.status, elapsedMs, retries, fellBack };
}

function checkMode(mode) {
  if (!MODES.includes(mode)) throw new TypeError(`Unknown mode "${mode}"; use one of ${MODES.join(', ')}.`);
  return mode;
}

function checkPath(path) {
  if (path !== 'direct' && path !== 'proxy') throw new TypeError(`Unknown path "${path}"; use "direct" or "proxy".`);
  return path;
}

function errorFor(res, body, path, nowMs = Date.now()) {
  const status = res.status;
  const retryAfter = parseRetryAfter(res.headers.get('Retry-After'), nowMs);
  const said = body && typeof body === 'object' && typeof body.error === 'string' ? body.error : null;
  const resetAt = retryAfter == null ? null : Math.ceil(nowMs / 1000 + retryAfter);
  const details = { status, path, body, retryAfter, resetAt };
  const where = path === 'direct' ? 'Tinybird' : path === 'proxy' ? 'the BFF proxy' : 'the BFF';
  if (status === 401 && path !== 'direct') return new SignedOutError(`Signed out (the BFF answered 401: ${said ?? 'no session'}). Sign in again.`, details);
  if (status === 403) return new ForbiddenError(`${where} refused (403): ${said ?? 'not allowed'}`, details);
  if (status === 429) {
    const wait = retryAfter == null ? '' : `; retry after ${retryAfter}s (at ${new Date(resetAt * 1000).toISOString().slice(11, 16)} UTC)`;
    return new RateLimitedError(`${where} is rate limiting (429)${wait}: ${said ?? 'too many requests'}`, details);
  }
  return new QueryError(`${where} answered ${status}: ${said ?? (typeof body === 'string' && body ? body.slice(0, 200) : res.statusText || 'error')}`, details);
}

async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function discard(res) {
  try {
    await res.arrayBuffer();
  } catch {
    // best effort: the body is not needed
  }
}

function decorate(body, r) {
  for (const key of ['path', 'elapsedMs', 'retries', 'fellBack']) {
    Object.defineProperty(body, key, { value: r[key], enumerable: false, configurable: true });
  }
  return body;
}

/** Whether `bff` (absolute or relative to the page) is on another origin than the page. */
function isCrossOrigin(bff) {
  const here = globalThis.location?.href;
  if (!here) return false;
  try {
    return new URL(bff, here).origin !== new URL(here).origin;
  } catch {
    return false;
  }
}

function originOf(url) {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function defaultSleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
