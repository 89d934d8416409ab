// A typed program that uses every export of web/tinybird-bff.js, checked by
// `tsc --strict --noEmit` (types.test.mjs). Never run: it only has to type-check.
// Each `@ts-expect-error` is a mistake the declarations must catch; if one stops being an
// error (a type widened to `any`, say), tsc fails with "Unused '@ts-expect-error' directive".
import {
  createClient,
  decodeJwtPayload,
  parseRetryAfter,
  toSearchParams,
  TinybirdBffClient,
  TinybirdBffError,
  SignedOutError,
  ForbiddenError,
  RateLimitedError,
  NetworkError,
  CorsError,
  QueryError,
  type BackgroundErrorEvent,
  type BffUser,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type ColumnMeta,
  type DatasourceAccess,
  type ErrorDetails,
  type ErrorPath,
  type FallbackEvent,
  type MeResponse,
  type Mode,
  type ModeEvent,
  type ParamValue,
  type Path,
  type PipeAccess,
  type Provider,
  type ProvidersResponse,
  type QueryEvent,
  type QueryOptions,
  type QueryParams,
  type QueryResult,
  type QueryStatistics,
  type QueryTextOptions,
  type ReadInfo,
  type ReadKind,
  type RecoveredEvent,
  type RetryEvent,
  type Scalar,
  type SignedOutEvent,
  type SignedOutReason,
  type SqlOptions,
  type TextResult,
  type TinybirdClaims,
  type TinybirdResponse,
  type TinybirdScope,
  type TokenInfo,
} from '../../web/tinybird-bff.js';

interface TopProduct {
  product_id: string;
  product_name: string;
  units: string; // UInt64: Tinybird quotes 64-bit integers
  revenue: number;
  org_id: string;
}

const seen: string[] = [];

const options: ClientOptions = {
  bff: '/api',
  credentials: 'same-origin',
  mode: 'auto',
  proxyStickySeconds: 60,
  refreshMarginSeconds: 30,
  autoRefresh: true,
  maxRetries: 3,
  maxRetryDelayMs: 10_000,
  retryBaseMs: 250,
  maxUrlLength: 4000,
  fetch: (input, init) => fetch(input, init),
  now: () => Date.now(),
  sleep: (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => { void signal; setTimeout(resolve, ms); }),
  onTokenRefresh: (info: TokenInfo) => seen.push(info.name),
  onFallback: (e: FallbackEvent) => seen.push(`${e.kind}:${e.pipe}:${e.reason}:${e.until}`),
  onSignedOut: (e: SignedOutEvent) => seen.push(e.reason),
  onQuery: (e: QueryEvent) => seen.push(`${e.pipe} ${e.kind} ${e.path} ${e.status} ${e.elapsedMs} ${e.retries} ${e.fellBack}`),
};

// @ts-expect-error: not a mode
const badOptions: ClientOptions = { mode: 'fast' };
void badOptions;

const tb: TinybirdBffClient = createClient(options);
const other = new TinybirdBffClient();
other.close();

async function reads(signal: AbortSignal): Promise<void> {
  // query: Tinybird's body plus the four read properties, typed rows.
  const res: QueryResult<TopProduct> = await tb.query<TopProduct>('top_products', { limit: 10, ids: [1, 2], org: null, day: undefined }, { path: 'direct', signal });
  const units: number = res.data.reduce((sum, row) => sum + Number(row.units), 0);
  const path: Path = res.path;
  const info: ReadInfo = res;
  const elapsed: number = res.elapsedMs + res.retries + (res.fellBack ? 1 : 0);
  const meta: ColumnMeta[] = res.meta;
  const stats: QueryStatistics | undefined = res.statistics;
  const rows: number = res.rows + (res.rows_before_limit_at_least ?? 0);
  const body: TinybirdResponse<TopProduct> = res;
  seen.push(String(units), path, info.path, String(elapsed), meta[0]?.type ?? '', String(stats?.elapsed), String(rows), String(body.data.length));
  // @ts-expect-error: the read properties are read-only
  res.path = 'proxy';
  // @ts-expect-error: rows are typed
  seen.push(res.data[0].no_such_column);

  // Untyped rows are unknown, not any.
  const loose = await tb.query('recent_orders');
  // @ts-expect-error: unknown cannot be used as a number without a check
  const n: number = loose.data[0].amount;
  void n;

  const params: QueryParams = new URLSearchParams({ limit: '5' });
  const value: ParamValue = ['a', 1, true, 2n];
  const scalar: Scalar = 'x';
  seen.push(String(value), scalar);
  await tb.query('top_products', params);
  // @ts-expect-error: a Date is not a Tinybird parameter (String(date) is not a Tinybird date)
  await tb.query('top_products', { since: new Date() });
  // @ts-expect-error: not a path
  await tb.query('top_products', {}, { path: 'auto' });

  const queryOptions: QueryOptions = { path: 'proxy', signal };
  const textOptions: QueryTextOptions = { format: 'ndjson', ...queryOptions };
  const csv: TextResult = await tb.queryText('top_products', { limit: 3 }, textOptions);
  seen.push(csv.text, String(csv.status), csv.path, String(csv.elapsedMs), String(csv.retries), String(csv.fellBack));
  // @ts-expect-error: not a format
  await tb.queryText('top_products', {}, { format: 'parquet' });

  // sql: JSON by default, text with { text: true }.
  const count = await tb.sql<{ n: string }>('SELECT count(*) AS n FROM orders');
  seen.push(count.data[0]?.n ?? '', count.path);
  const sqlText: TextResult = await tb.sql('SELECT * FROM orders LIMIT 5 FORMAT CSV', { text: true });
  seen.push(sqlText.text);
  const sqlOptions: SqlOptions = { path: 'proxy', signal, text: false };
  const either: QueryResult | TextResult = await tb.sql('SELECT 1', sqlOptions);
  seen.push('text' in either ? either.text : String(either.rows));
  // @ts-expect-error: { text: true } gives a TextResult, which has no data
  seen.push(String((await tb.sql('SELECT 1', { text: true })).data));
}

async function session(): Promise<void> {
  const user: BffUser = await tb.login('alice', 'alice-demo');
  seen.push(user.id, user.tenant ?? '', ...user.roles, ...Object.values(user.attributes), user.display_name ?? '');
  const me: MeResponse = await tb.me();
  const pipe: PipeAccess | undefined = me.pipes[0];
  const ds: DatasourceAccess | undefined = me.datasources[0];
  seen.push(me.user.id, pipe?.pipe ?? '', String(pipe?.allow_sql_over_pipe), ...(pipe?.grants ?? []), ds?.filter ?? '', me.grant_error ?? '');
  const providers: ProvidersResponse = await tb.providers();
  const first: Provider | undefined = providers.providers[0];
  seen.push(String(providers.local), first?.login_url ?? '', first?.display_name ?? '', first?.name ?? '');
  const logoutUrl: string | undefined = await tb.logout();
  seen.push(logoutUrl ?? '');
}

async function tokens(): Promise<void> {
  const jwt: string = await tb.getToken();
  const info: TokenInfo = await tb.refreshToken();
  const now: TokenInfo | null = tb.tokenInfo();
  seen.push(jwt, info.host, ...info.pipes, ...info.datasources, String(info.expiresAt + info.expiresIn + info.secondsLeft + info.refreshAt + info.serverOffsetMs));
  seen.push(now?.token ?? '');
  const claims: TinybirdClaims = info.claims;
  const scopes: TinybirdScope[] = claims.scopes ?? [];
  for (const scope of scopes) {
    if (scope.type === 'PIPES:READ') seen.push(scope.resource, JSON.stringify(scope.fixed_params));
    else seen.push(scope.resource, scope.filter ?? '');
  }
  const decoded: TinybirdClaims | null = decodeJwtPayload(jwt);
  seen.push(String(decoded?.exp), decoded?.workspace_id ?? '', String(decoded?.limits?.rps));
  const wait: number | null = parseRetryAfter('3') ?? parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.now()) ?? parseRetryAfter(null);
  const sp: URLSearchParams = toSearchParams({ ids: [1, 2] });
  seen.push(String(wait), sp.toString(), toSearchParams().toString());
}

function modesAndEvents(): void {
  const mode: Mode = tb.getMode();
  tb.setMode(mode === 'proxy' ? 'auto' : 'proxy');
  // @ts-expect-error: not a mode
  tb.setMode('fallback');
  const state: ClientState = tb.state();
  seen.push(state.mode, state.next, String(state.proxyUntil));

  const offs: Array<() => void> = [
    tb.on('token', (t: TokenInfo) => seen.push(t.token)),
    tb.on('fallback', (e: FallbackEvent) => seen.push(e.reason)),
    tb.on('recovered', (e: RecoveredEvent) => seen.push(e.pipe, e.kind)),
    tb.on('retry', (e: RetryEvent) => seen.push(e.path, String(e.status + e.delayMs + e.attempt), String(e.retryAfter))),
    tb.on('query', (e: QueryEvent) => seen.push(e.path)),
    tb.on('signedout', (e: SignedOutEvent) => seen.push(e.reason)),
    tb.on('mode', (e: ModeEvent) => seen.push(e.mode)),
    tb.on('error', (e: BackgroundErrorEvent) => seen.push(String(e.error))),
  ];
  // @ts-expect-error: no such event
  tb.on('tokens', () => {});
  // @ts-expect-error: the detail of 'mode' has no token
  tb.on('mode', (e) => seen.push(e.token));
  offs.forEach((off) => off());

  const kind: ReadKind = 'sql';
  const reason: SignedOutReason = 'token-401';
  const events: keyof ClientEvents = 'recovered';
  seen.push(kind, reason, events);
}

function errors(err: unknown): string {
  const details: ErrorDetails = { status: 429, path: 'direct', body: { error: 'slow down' }, retryAfter: 2, resetAt: 1_700_000_002, cause: err };
  const made = new RateLimitedError('rate limited', details);
  const where: ErrorPath = made.path;
  seen.push(String(where));
  if (err instanceof SignedOutError) return 'sign in again';
  if (err instanceof ForbiddenError) return `forbidden (${err.status})`;
  if (err instanceof RateLimitedError) {
    const until: number | null = err.resetAt;
    return until === null ? `wait ${err.retryAfter ?? '?'} s` : `until ${new Date(until * 1000).toISOString()}`;
  }
  if (err instanceof CorsError) return `add this origin to [cors] allowed_origins: ${err.message}`;
  if (err instanceof NetworkError) return `unreachable via ${err.path}`;
  if (err instanceof QueryError) return `query failed: ${err.status} ${JSON.stringify(err.body)}`;
  if (err instanceof TinybirdBffError) return `${err.name}: ${err.message}`;
  // @ts-expect-error: status only exists on the client's errors
  return String(err.status);
}

async function sdkFetch(): Promise<Response> {
  // tb.fetch is what @tinybirdco/sdk's `fetch` option takes.
  const sdkOptions: { fetch: typeof fetch } = { fetch: tb.fetch };
  void sdkOptions;
  return tb.fetch('https://api.tinybird.co/v0/pipes/top_products.json?limit=1', { method: 'GET' });
}

export { reads, session, tokens, modesAndEvents, errors, sdkFetch };
