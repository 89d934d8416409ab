/**
 * Type declarations for `tinybird-bff.js`, the dependency-free browser client of tinybird-bff.
 *
 * They describe the module exactly as it behaves at run time; `tests/types/` checks them with
 * `tsc --strict` over an example that uses every export, and checks that the names exported
 * here are the names the module exports.
 *
 * @module tinybird-bff
 */

/** How the client chooses a path: `auto` tries direct and falls back to the proxy. */
export type Mode = 'auto' | 'direct' | 'proxy';

/** The path that served (or failed) a read. */
export type Path = 'direct' | 'proxy';

/** What was asked: a pipe, or SQL over data sources. */
export type ReadKind = 'pipe' | 'sql';

/**
 * A pipe parameter value. Arrays repeat the key (`?ids=1&ids=2`); `null` and `undefined` leave
 * the parameter out; anything else goes through `String()`. A `token` key is refused: the client
 * authenticates each request itself.
 */
export type ParamValue = Scalar | null | undefined | ReadonlyArray<Scalar>;

/** One parameter value. Format dates yourself (`2026-01-31`, `2026-01-31 10:00:00`): `String(date)` is not a Tinybird date. */
export type Scalar = string | number | boolean | bigint;

/** Pipe parameters, as an object or as ready-made `URLSearchParams`. */
export type QueryParams = { readonly [name: string]: ParamValue } | URLSearchParams;

/** Options of {@link createClient}. Every one has a default. */
export interface ClientOptions {
  /**
   * Base URL of the BFF API: a path on the page's origin, or another origin listed in the BFF's
   * `[cors] allowed_origins`. Default `'/api'`.
   */
  bff?: string;
  /** Cookies on calls to the BFF. Default `'include'` when `bff` is on another origin, else `'same-origin'`. */
  credentials?: RequestCredentials;
  /** Default `'auto'`; change later with {@link TinybirdBffClient.setMode}. */
  mode?: Mode;
  /** After a direct network failure, how long `auto` keeps using the proxy. Default 60. */
  proxyStickySeconds?: number;
  /**
   * Refresh the token when fewer seconds than this remain (server clock).
   * Default: a quarter of the token's lifetime, between 2 and 60 s.
   */
  refreshMarginSeconds?: number;
  /** Also refresh in the background just before the margin. Default `true`. */
  autoRefresh?: boolean;
  /** Retries per read on 429/502/503/504 (each path). Default 3. */
  maxRetries?: number;
  /**
   * The longest one retry waits. Default 10000. A `Retry-After` asking for longer is not
   * retried: the error is thrown at once, with `retryAfter` and `resetAt`.
   */
  maxRetryDelayMs?: number;
  /** First backoff step; doubles on each retry. Default 250. */
  retryBaseMs?: number;
  /** Longer GET URLs are sent as a form POST instead. Default 4000. */
  maxUrlLength?: number;
  /** fetch implementation (tests inject a fake). Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Local clock in ms (tests inject a fake). Default `Date.now`. */
  now?: () => number;
  /** Waits between retries; must reject when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Shortcut for `on('token', fn)`. */
  onTokenRefresh?: (info: TokenInfo) => void;
  /** Shortcut for `on('fallback', fn)`. */
  onFallback?: (event: FallbackEvent) => void;
  /** Shortcut for `on('signedout', fn)`. */
  onSignedOut?: (event: SignedOutEvent) => void;
  /** Shortcut for `on('query', fn)`. */
  onQuery?: (event: QueryEvent) => void;
}

/** Per-call options of {@link TinybirdBffClient.query}. */
export interface QueryOptions {
  /** Force one path for this call only (ignores the mode and any fallback). */
  path?: Path;
  /** Aborts the read, its token wait and its retry waits; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Per-call options of {@link TinybirdBffClient.queryText}. */
export interface QueryTextOptions extends QueryOptions {
  /** Default `'csv'`. */
  format?: 'csv' | 'ndjson' | 'json';
}

/** Per-call options of {@link TinybirdBffClient.sql}. */
export interface SqlOptions extends QueryOptions {
  /** Resolve to a {@link TextResult} (for `FORMAT CSV`, `CSVWithNames`, `JSONEachRow`). */
  text?: boolean;
}

/** One column of a Tinybird JSON answer. */
export interface ColumnMeta {
  name: string;
  /** ClickHouse type, e.g. `String`, `UInt64`, `Nullable(DateTime)`. */
  type: string;
}

/** `statistics` of a Tinybird JSON answer. */
export interface QueryStatistics {
  /** Seconds. */
  elapsed: number;
  rows_read: number;
  bytes_read: number;
}

/**
 * Tinybird's JSON body as it sent it. 64-bit integers arrive as strings (`Number(row.units)`).
 * `Row` describes one element of `data`.
 */
export interface TinybirdResponse<Row = Record<string, unknown>> {
  meta: ColumnMeta[];
  data: Row[];
  rows: number;
  rows_before_limit_at_least?: number;
  statistics?: QueryStatistics;
}

/** How a read went: added to every result (non-enumerable on JSON results). */
export interface ReadInfo {
  /** Which path served the answer. */
  readonly path: Path;
  /** Wall time including retries and fallback. */
  readonly elapsedMs: number;
  /** 429/5xx retries done. */
  readonly retries: number;
  /** True when the direct path failed and the proxy answered. */
  readonly fellBack: boolean;
}

/**
 * What {@link TinybirdBffClient.query} and {@link TinybirdBffClient.sql} resolve to: Tinybird's
 * body untouched plus {@link ReadInfo}. The four added properties are non-enumerable, so
 * `JSON.stringify(result)` and `{...result}` still give exactly Tinybird's body.
 */
export type QueryResult<Row = Record<string, unknown>> = TinybirdResponse<Row> & ReadInfo;

/** A text answer (`queryText`, or `sql` with `text: true`). Plain properties. */
export interface TextResult extends ReadInfo {
  text: string;
  status: number;
}

/** A scope of a Tinybird JWT. */
export type TinybirdScope =
  | { type: 'PIPES:READ'; resource: string; fixed_params?: Record<string, string | number | boolean> }
  | { type: 'DATASOURCES:READ'; resource: string; filter?: string };

/** The claims of a Tinybird JWT as decoded (not verified) in the browser. */
export interface TinybirdClaims {
  workspace_id?: string;
  name?: string;
  exp?: number;
  iat?: number;
  scopes?: TinybirdScope[];
  limits?: { rps?: number };
  [claim: string]: unknown;
}

/** The current token, as {@link TinybirdBffClient.tokenInfo} and the `token` event give it. */
export interface TokenInfo {
  /** The JWT itself (readable by any script on the page: the direct path's trade-off). */
  token: string;
  /** The JWT `name` claim (Tinybird's rate-limit and usage key). */
  name: string;
  /** The decoded payload (not verified: only Tinybird can). A copy. */
  claims: TinybirdClaims;
  /** Tinybird base URL the token is for. */
  host: string;
  /** Pipes the token may read. A copy. */
  pipes: string[];
  /** Data sources the token may read with SQL, each through its row filter. A copy. */
  datasources: string[];
  /** Unix seconds, server clock. */
  expiresAt: number;
  /** Lifetime in seconds as minted. */
  expiresIn: number;
  /** Server clock minus local clock, measured when the token arrived. */
  serverOffsetMs: number;
  /** Seconds until expiry by the server's clock, at the time of the call. */
  secondsLeft: number;
  /** Unix seconds (server clock) at which the client refreshes it. */
  refreshAt: number;
}

/** Which path `auto` takes next (see {@link TinybirdBffClient.state}). */
export interface ClientState {
  mode: Mode;
  next: Path;
  /** Local ms timestamp until which `auto` prefers the proxy, or null. */
  proxyUntil: number | null;
}

/** `fallback`: the direct path could not reach Tinybird and the proxy takes over. */
export interface FallbackEvent {
  /** The pipe, or `'sql'`. */
  pipe: string;
  kind: ReadKind;
  /** The network error's message. */
  reason: string;
  /** Local ms timestamp until which `auto` uses the proxy. */
  until: number;
}

/** `recovered`: direct works again after a fallback. */
export interface RecoveredEvent {
  pipe: string;
  kind: ReadKind;
}

/** `query`: one read finished (successfully or not) with an HTTP answer. */
export interface QueryEvent {
  /** The pipe, or `'sql'`. */
  pipe: string;
  kind: ReadKind;
  path: Path;
  status: number;
  elapsedMs: number;
  retries: number;
  fellBack: boolean;
}

/** `retry`: a 429/502/503/504 is about to be retried. */
export interface RetryEvent {
  /** `'bff'` for the token route. */
  path: Path | 'bff';
  status: number;
  delayMs: number;
  attempt: number;
  /** Seconds from a readable `Retry-After`, else null (Tinybird's CORS hides it on direct calls). */
  retryAfter: number | null;
}

/** Why the session ended: `logout()`, or a 401 from the token route or the proxy. */
export type SignedOutReason = 'logout' | 'token-401' | 'proxy-401';

/** `signedout`: the session is gone; show the login form. */
export interface SignedOutEvent {
  reason: SignedOutReason;
}

/** `mode`: {@link TinybirdBffClient.setMode} was called. */
export interface ModeEvent {
  mode: Mode;
}

/** `error`: a background token refresh failed (the next read will try again). */
export interface BackgroundErrorEvent {
  error: unknown;
}

/** Every event and the detail its listeners receive. */
export interface ClientEvents {
  token: TokenInfo;
  fallback: FallbackEvent;
  recovered: RecoveredEvent;
  retry: RetryEvent;
  query: QueryEvent;
  signedout: SignedOutEvent;
  mode: ModeEvent;
  error: BackgroundErrorEvent;
}

/** A user as the BFF describes it (`login()`, `me()`). */
export interface BffUser {
  /** Login name, or the identity provider's `sub`. */
  id: string;
  tenant?: string;
  roles: string[];
  attributes: Record<string, string>;
  display_name?: string | null;
}

/** A pipe the user's grants give, with the fixed params Tinybird enforces. */
export interface PipeAccess {
  pipe: string;
  fixed_params: Record<string, unknown>;
  /** The grants that gave it, in config order. */
  grants: string[];
  /** Whether the proxy lets this pipe take SQL (`q`) over its result. */
  allow_sql_over_pipe: boolean;
}

/** A data source the user's grants give, with its row filter. */
export interface DatasourceAccess {
  datasource: string;
  /** The SQL boolean expression Tinybird adds to every read. */
  filter: string;
  grants: string[];
}

/** What {@link TinybirdBffClient.me} resolves to. */
export interface MeResponse {
  user: BffUser;
  pipes: PipeAccess[];
  datasources: DatasourceAccess[];
  /** Why the grants give nothing (e.g. a missing attribute), or null. */
  grant_error: string | null;
  /** Whether they manage API keys (a tenant admin or platform admin, with `[keys]` on). */
  manages_keys: boolean;
}

/** An identity provider the login page can offer. */
export interface Provider {
  name: string;
  display_name: string;
  /** Starts the provider's sign-in (add `?return_to=/path`). */
  login_url: string;
}

/** What {@link TinybirdBffClient.providers} resolves to. */
export interface ProvidersResponse {
  /** Whether the username/password form applies. */
  local: boolean;
  providers: Provider[];
}

/** Which hop an error comes from: Tinybird (`direct`), the BFF `proxy`, or the BFF's own routes (`bff`). */
export type ErrorPath = Path | 'bff' | null;

/** The details every {@link TinybirdBffError} carries. */
export interface ErrorDetails {
  status?: number;
  path?: ErrorPath;
  body?: unknown;
  retryAfter?: number | null;
  resetAt?: number | null;
  cause?: unknown;
}

/** Base class of every error this client throws. */
export class TinybirdBffError extends Error {
  constructor(message: string, details?: ErrorDetails);
  /** HTTP status, or 0 when no response arrived. */
  status: number;
  /** Which hop failed. */
  path: ErrorPath;
  /** Parsed error body (`{"error": "..."}`) when there was one, else the text, else null. */
  body: unknown;
  /** Seconds the server asked to wait (429), if it said and the browser could read it. */
  retryAfter: number | null;
  /** When that wait ends, in Unix seconds by the browser's clock; null when not said. */
  resetAt: number | null;
}
/** The BFF session is gone (logged out, expired, or never logged in): show the login form. */
export class SignedOutError extends TinybirdBffError {}
/** 403: no grant for this pipe or data source (or Tinybird still refuses after a token refresh). */
export class ForbiddenError extends TinybirdBffError {}
/**
 * 429 after all retries, or at once when a readable `Retry-After` is longer than
 * `maxRetryDelayMs` (a spent budget, a lockout: a final answer, not a hiccup). `retryAfter` and
 * `resetAt` say how long the server wanted, when readable.
 */
export class RateLimitedError extends TinybirdBffError {}
/** No response: CORS failure, blocked host, DNS, connection refused, offline. */
export class NetworkError extends TinybirdBffError {}
/** The BFF answered but its `[cors] allowed_origins` does not list this page's origin. */
export class CorsError extends NetworkError {}
/** Any other non-2xx answer (400 bad parameter, 404 unknown pipe, 408 timeout, 5xx). */
export class QueryError extends TinybirdBffError {}

/** Decodes a JWT's payload without verifying it; null when `jwt` is not a JWT. */
export function decodeJwtPayload(jwt: string): TinybirdClaims | null;

/** Reads a `Retry-After` header (seconds or an HTTP date) into seconds; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs?: number): number | null;

/** Tinybird query parameters from an object (arrays repeat the key). Throws on a `token` key. */
export function toSearchParams(params?: QueryParams): URLSearchParams;

/** Creates a client. Nothing is fetched until the first read. */
export function createClient(options?: ClientOptions): TinybirdBffClient;

/** A Tinybird client bound to one BFF. Create it with {@link createClient}. */
export class TinybirdBffClient {
  constructor(options?: ClientOptions);

  /**
   * A fetch-compatible function for code that speaks Tinybird's URL scheme (e.g.
   * `@tinybirdco/sdk`): `…/v0/pipes/<pipe>.<json|csv|ndjson>` on any host, sent through the
   * current path. Non-2xx answers come back as Responses; only signed-out/network errors reject.
   */
  readonly fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof ClientEvents>(event: E, fn: (detail: ClientEvents[E]) => void): () => void;

  /** The configured mode. */
  getMode(): Mode;
  /** Forces a path or lets the client choose; also forgets a previous fallback. */
  setMode(mode: Mode): void;
  /** Which path `auto` would take now. */
  state(): ClientState;

  /** Runs a pipe: Tinybird's JSON body with {@link ReadInfo} added. */
  query<Row = Record<string, unknown>>(pipe: string, params?: QueryParams, opts?: QueryOptions): Promise<QueryResult<Row>>;
  /** Runs a pipe in `csv` (default), `ndjson` or `json` and resolves to the text. */
  queryText(pipe: string, params?: QueryParams, opts?: QueryTextOptions): Promise<TextResult>;
  /** SQL over the data sources the user's grants give, each through its row filter. */
  sql<Row = Record<string, unknown>>(query: string, opts?: SqlOptions & { text?: false }): Promise<QueryResult<Row>>;
  sql(query: string, opts: SqlOptions & { text: true }): Promise<TextResult>;
  sql<Row = Record<string, unknown>>(query: string, opts?: SqlOptions): Promise<QueryResult<Row> | TextResult>;

  /** A valid JWT for your own Tinybird calls (fetched or refreshed if needed). */
  getToken(): Promise<string>;
  /** Fetches a new token now; concurrent calls share one request. */
  refreshToken(): Promise<TokenInfo>;
  /** The current token's details, or null before the first fetch and after logout. */
  tokenInfo(): TokenInfo | null;

  /** Logs in with the BFF's local users; resolves to the user. */
  login(username: string, password: string): Promise<BffUser>;
  /** Ends the session; resolves to the identity provider's logout URL after an OIDC login. */
  logout(): Promise<string | undefined>;
  /** How users may sign in. */
  providers(): Promise<ProvidersResponse>;
  /** The signed-in user, their pipes and data sources. */
  me(): Promise<MeResponse>;
  /** Stops the background refresh timer. */
  close(): void;
}
