/**
 * React bindings for the tinybird-bff browser client: a provider and two hooks.
 *
 * ```js
 * import { createClient } from 'tinybird-bff';
 * import { TinybirdProvider, useTinybirdQuery } from 'tinybird-bff/react';
 *
 * const tb = createClient({ bff: '/api' });
 * root.render(createElement(TinybirdProvider, { client: tb }, createElement(App)));
 *
 * function TopProducts() {
 *   const { data, error, loading, path, refetch } = useTinybirdQuery('top_products', { limit: 10 });
 * }
 * ```
 *
 * Why it is shaped this way:
 * - **One request per key.** Every hook reading the same pipe (or SQL) with the same
 *   parameters and path shares one entry of a per-client store, so a dashboard that mounts the
 *   same widget twice sends one request, and `refetch()` from one of them updates all of them.
 *   The entry is kept only while some component uses it: this is de-duplication, not a cache.
 * - **Cancelled on unmount.** When the last component using an entry unmounts while its read
 *   is in flight, the read's `AbortSignal` fires, which stops the token wait, the fetch and any
 *   retry wait. The abort waits one microtask, so React's StrictMode unmount/remount of the
 *   same component keeps the request instead of sending it twice.
 * - **Token refreshes refetch only when asked** (`refetchOnTokenRefresh: true`), and never
 *   while a read is in flight (that read already uses the new token).
 * - Only hooks that React 18 and 19 both have (`useSyncExternalStore` for the store), and no
 *   JSX, so the module runs as is in a browser with an import map for `react`.
 *
 * @module tinybird-bff/react
 */
import { createContext, createElement, useCallback, useContext, useMemo, useSyncExternalStore } from 'react';

const ClientContext = createContext(null);

/**
 * Makes `client` (from `createClient`) available to the hooks below it.
 * @param {{client: import('./tinybird-bff.js').TinybirdBffClient, children?: any}} props
 */
export function TinybirdProvider({ client, children }) {
  if (!client || typeof client.query !== 'function' || typeof client.sql !== 'function') {
    throw new TypeError('TinybirdProvider needs a client: <TinybirdProvider client={createClient({ bff: "/api" })}>.');
  }
  return createElement(ClientContext.Provider, { value: client }, children);
}

/**
 * The client of the nearest {@link TinybirdProvider}.
 * @returns {import('./tinybird-bff.js').TinybirdBffClient}
 */
export function useTinybirdClient() {
  const client = useContext(ClientContext);
  if (!client) {
    throw new Error('useTinybirdClient, useTinybirdQuery and useTinybirdSql need a <TinybirdProvider client={...}> above them (or pass { client } in the options).');
  }
  return client;
}

/**
 * Runs a pipe and keeps the answer in React state.
 * @param {string} pipe
 * @param {Record<string, unknown>|URLSearchParams} [params]
 * @param {HookOptions} [options]
 * @returns {HookResult}
 */
export function useTinybirdQuery(pipe, params, options = {}) {
  const client = useOptionalClient(options.client);
  // A string: equal parameters give an equal key whatever the object's identity or key order.
  const key = keyOf('pipe', pipe, paramsList(params), options.path);
  // Rebuilt only when the key changes, so it reads the parameters the key was made of.
  const read = useCallback((signal) => client.query(pipe, params, { path: options.path, signal }), [client, key]); // eslint-disable-line react-hooks/exhaustive-deps
  return useEntry(client, key, read, options);
}

/**
 * Runs SQL over the user's data sources and keeps the answer in React state.
 * @param {string} query
 * @param {HookOptions} [options]
 * @returns {HookResult}
 */
export function useTinybirdSql(query, options = {}) {
  const client = useOptionalClient(options.client);
  const key = keyOf('sql', query, [], options.path);
  const read = useCallback((signal) => client.sql(query, { path: options.path, signal }), [client, key]); // eslint-disable-line react-hooks/exhaustive-deps
  return useEntry(client, key, read, options);
}

/**
 * @typedef {object} HookOptions
 * @property {boolean} [enabled=true] false: do not read (e.g. until the user signed in).
 * @property {'direct'|'proxy'} [path] Force a path for these reads (part of the key).
 * @property {boolean} [refetchOnTokenRefresh=false] Read again whenever the client gets a new token.
 * @property {import('./tinybird-bff.js').TinybirdBffClient} [client] Use this client instead of the provider's.
 */

/**
 * @typedef {object} HookResult
 * @property {object[]|undefined} data The rows (`result.data`), once read.
 * @property {object|undefined} result Tinybird's whole body (`meta`, `rows`, `statistics`, and `path`, `elapsedMs`, `retries`, `fellBack`).
 * @property {Error|undefined} error The last read's error (a `TinybirdBffError` subclass, or a `TypeError` for a bad argument).
 * @property {boolean} loading A read is in flight (also during a refetch, while `data` still holds the previous answer).
 * @property {'direct'|'proxy'|undefined} path Which path served `data`.
 * @property {() => Promise<void>} refetch Reads again now (cancelling a read in flight for the same key).
 */

// ---- internals ----

const IDLE = Object.freeze({ data: undefined, result: undefined, error: undefined, loading: false, path: undefined });
const PENDING = Object.freeze({ ...IDLE, loading: true });
const stores = new WeakMap(); // client -> Store

function useOptionalClient(explicit) {
  const fromContext = useContext(ClientContext);
  const client = explicit ?? fromContext;
  if (!client) {
    throw new Error('useTinybirdQuery and useTinybirdSql need a <TinybirdProvider client={...}> above them (or pass { client } in the options).');
  }
  return client;
}

function useEntry(client, key, read, options) {
  const enabled = options.enabled !== false;
  const refetchOnToken = options.refetchOnTokenRefresh === true;
  const store = storeFor(client);
  const subscribe = useCallback(
    (onChange) => (enabled ? store.subscribe(key, read, onChange, refetchOnToken) : () => {}),
    [store, key, read, enabled, refetchOnToken],
  );
  const snapshot = useCallback(() => (enabled ? store.snapshot(key) ?? PENDING : IDLE), [store, key, enabled]);
  const state = useSyncExternalStore(subscribe, snapshot, snapshot);
  const refetch = useCallback(() => (enabled ? store.refetch(key) : Promise.resolve()), [store, key, enabled]);
  // React state is per render; keep the returned object stable while nothing changed.
  return useMemo(() => ({ ...state, refetch }), [state, refetch]);
}

function storeFor(client) {
  let store = stores.get(client);
  if (!store) {
    store = new Store(client);
    stores.set(client, store);
  }
  return store;
}

/** Parameters as a sorted list of `name=value` strings: the key must not depend on object identity or order. */
function paramsList(params) {
  const pairs = [];
  if (params instanceof URLSearchParams) {
    for (const [k, v] of params) pairs.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  } else {
    for (const [k, value] of Object.entries(params ?? {})) {
      if (value === undefined || value === null) continue;
      const values = Array.isArray(value) ? value : [value];
      values.forEach((v, i) => pairs.push(`${encodeURIComponent(k)}=${String(i).padStart(6, '0')}:${encodeURIComponent(String(v))}`));
    }
  }
  return pairs.sort();
}

function keyOf(kind, what, pairs, path) {
  return JSON.stringify([kind, String(what), path ?? null, pairs]);
}

/**
 * Entries by key, for one client. An entry lives while components use it.
 * Each entry: {state, read, listeners, tokenListeners, controller}.
 */
class Store {
  constructor(client) {
    this.client = client;
    this.entries = new Map();
    this.offToken = null;
  }

  snapshot(key) {
    return this.entries.get(key)?.state;
  }

  subscribe(key, read, onChange, refetchOnToken) {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, state: PENDING, read, listeners: new Set(), tokenListeners: 0, controller: null, settled: false };
      this.entries.set(key, entry);
    }
    entry.read = read;
    entry.listeners.add(onChange);
    if (refetchOnToken) {
      entry.tokenListeners++;
      this.#watchTokens();
    }
    if (!entry.controller && !entry.settled) this.#start(entry);
    return () => {
      entry.listeners.delete(onChange);
      if (refetchOnToken) entry.tokenListeners--;
      // Wait a microtask: StrictMode (and a key flip-flop within one commit) resubscribes at once.
      queueMicrotask(() => {
        if (entry.listeners.size > 0 || this.entries.get(key) !== entry) return;
        this.entries.delete(key);
        entry.controller?.abort(new DOMException('The component using this read unmounted.', 'AbortError'));
        entry.controller = null;
        if (![...this.entries.values()].some((e) => e.tokenListeners > 0)) this.#unwatchTokens();
      });
    };
  }

  refetch(key) {
    const entry = this.entries.get(key);
    return entry ? this.#start(entry) : Promise.resolve();
  }

  /** Starts a read for `entry`, cancelling one in flight (its answer would be older). */
  #start(entry) {
    entry.controller?.abort(new DOMException('Superseded by a newer read of the same key.', 'AbortError'));
    const controller = new AbortController();
    entry.controller = controller;
    entry.settled = false;
    if (!entry.state.loading) this.#set(entry, { ...entry.state, loading: true });
    let promise;
    try {
      promise = Promise.resolve(entry.read(controller.signal));
    } catch (error) {
      promise = Promise.reject(error); // a bad argument (TypeError) becomes the hook's error
    }
    return promise.then(
      (result) => {
        if (entry.controller !== controller) return;
        entry.controller = null;
        entry.settled = true;
        this.#set(entry, { data: Array.isArray(result?.data) ? result.data : undefined, result, error: undefined, loading: false, path: result?.path });
      },
      (error) => {
        if (entry.controller !== controller) return; // cancelled or superseded: nobody waits for it
        entry.controller = null;
        entry.settled = true;
        this.#set(entry, { ...entry.state, error, loading: false });
      },
    );
  }

  #set(entry, state) {
    entry.state = Object.freeze(state);
    for (const fn of [...entry.listeners]) fn();
  }

  #watchTokens() {
    if (this.offToken) return;
    this.offToken = this.client.on('token', () => {
      for (const entry of this.entries.values()) {
        // A read in flight already waits for (and uses) the new token.
        if (entry.tokenListeners > 0 && !entry.controller) this.#start(entry);
      }
    });
  }

  #unwatchTokens() {
    this.offToken?.();
    this.offToken = null;
  }
}
