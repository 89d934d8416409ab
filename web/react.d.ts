/**
 * Type declarations for `react.js`: React bindings for the tinybird-bff browser client
 * (React 18 or 19, an optional peer dependency).
 *
 * @module tinybird-bff/react
 */
import type { ReactElement, ReactNode } from 'react';
import type { Path, QueryParams, QueryResult, TinybirdBffClient } from './tinybird-bff.js';

/** Props of {@link TinybirdProvider}. */
export interface TinybirdProviderProps {
  /** The client the hooks below use (from `createClient`). */
  client: TinybirdBffClient;
  children?: ReactNode;
}

/** Makes `client` available to the hooks below it. */
export function TinybirdProvider(props: TinybirdProviderProps): ReactElement;

/** The client of the nearest {@link TinybirdProvider}; throws without one. */
export function useTinybirdClient(): TinybirdBffClient;

/** Options of {@link useTinybirdQuery} and {@link useTinybirdSql}. */
export interface TinybirdHookOptions {
  /** `false`: do not read (e.g. until the user signed in); the result is idle. Default `true`. */
  enabled?: boolean;
  /** Force a path for these reads. Part of the de-duplication key. */
  path?: Path;
  /** Read again whenever the client gets a new token (never while a read is in flight). Default `false`. */
  refetchOnTokenRefresh?: boolean;
  /** Use this client instead of the provider's. */
  client?: TinybirdBffClient;
}

/** What the hooks return. Components using the same key share it. */
export interface TinybirdHookResult<Row = Record<string, unknown>> {
  /** The rows (`result.data`), once read; kept during a refetch. */
  data: Row[] | undefined;
  /** Tinybird's whole body (`meta`, `rows`, `statistics`) with `path`, `elapsedMs`, `retries`, `fellBack`. */
  result: QueryResult<Row> | undefined;
  /** The last read's error: a `TinybirdBffError` subclass, or a `TypeError` for a bad argument. */
  error: Error | undefined;
  /** A read is in flight (also during a refetch). */
  loading: boolean;
  /** Which path served `data`. */
  path: Path | undefined;
  /** Reads again now, cancelling a read in flight for the same key; resolves when it settled. */
  refetch: () => Promise<void>;
}

/**
 * Runs `pipe` with `params`. Components asking for the same pipe, parameters (whatever their
 * order or object identity) and path share one request; the request is aborted when the last of
 * them unmounts.
 */
export function useTinybirdQuery<Row = Record<string, unknown>>(
  pipe: string,
  params?: QueryParams,
  options?: TinybirdHookOptions,
): TinybirdHookResult<Row>;

/** Runs SQL over the user's data sources (each through its row filter); shared and cancelled like {@link useTinybirdQuery}. */
export function useTinybirdSql<Row = Record<string, unknown>>(
  query: string,
  options?: TinybirdHookOptions,
): TinybirdHookResult<Row>;
