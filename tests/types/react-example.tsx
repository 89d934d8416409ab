// A typed React program that uses every export of web/react.js, checked by `tsc --strict`
// against React's types 19 and 18 (types.test.mjs). Never run: it only has to type-check.
import { useState, type ReactElement } from 'react';
import { createClient, ForbiddenError, type Path, type QueryResult } from '../../web/tinybird-bff.js';
import {
  TinybirdProvider,
  useTinybirdClient,
  useTinybirdQuery,
  useTinybirdSql,
  type TinybirdHookOptions,
  type TinybirdHookResult,
  type TinybirdProviderProps,
} from '../../web/react.js';

interface SalesDay {
  day: string;
  orders: string;
  revenue: number;
}

const tb = createClient({ bff: '/api' });

function Sales({ days }: { days: number }): ReactElement {
  const options: TinybirdHookOptions = { refetchOnTokenRefresh: true, path: 'direct', enabled: days > 0 };
  const { data, error, loading, path, refetch, result }: TinybirdHookResult<SalesDay> = useTinybirdQuery<SalesDay>('sales_by_day', { days }, options);
  const served: Path | undefined = path;
  const whole: QueryResult<SalesDay> | undefined = result;
  if (error instanceof ForbiddenError) return <p>No access ({error.status})</p>;
  if (error) return <p>{error.message}</p>;
  return (
    <section aria-busy={loading}>
      <button onClick={() => void refetch().then(() => undefined)}>Reload</button>
      <small>{served} · {whole?.elapsedMs ?? 0} ms · {whole?.statistics?.rows_read ?? 0} rows read</small>
      <ul>{data?.map((d) => <li key={d.day}>{d.day}: {Number(d.orders)} orders, {d.revenue.toFixed(2)}</li>)}</ul>
    </section>
  );
}

function Count(): ReactElement {
  const client = useTinybirdClient();
  const { data } = useTinybirdSql<{ n: string }>('SELECT count(*) AS n FROM orders', { path: 'proxy', client });
  // @ts-expect-error: rows are typed
  const wrong: number = data?.[0]?.n;
  void wrong;
  return <b>{data?.[0]?.n ?? '…'}</b>;
}

function Untyped(): ReactElement {
  const { data } = useTinybirdQuery('top_products', new URLSearchParams({ limit: '3' }));
  // @ts-expect-error: untyped rows are unknown, not any
  const name: string = data?.[0]?.product_name;
  void name;
  // @ts-expect-error: not a hook option
  useTinybirdQuery('top_products', {}, { refetchInterval: 1000 });
  // @ts-expect-error: not a path
  useTinybirdSql('SELECT 1', { path: 'auto' });
  return <i>{data?.length ?? 0}</i>;
}

export function App(): ReactElement {
  const [days, setDays] = useState(30);
  const props: TinybirdProviderProps = { client: tb };
  return (
    <TinybirdProvider {...props}>
      <input type="number" value={days} onChange={(e) => setDays(Number(e.target.value))} />
      <Sales days={days} />
      <Count />
      <Untyped />
    </TinybirdProvider>
  );
}

export function MissingClient(): ReactElement {
  // @ts-expect-error: the provider needs a client
  return <TinybirdProvider><Count /></TinybirdProvider>;
}
