// The demo page's direct-vs-proxy comparison: the same pipe call through both paths,
// alternating, after one warm-up each, drawn as a histogram, a box plot and a table. It runs
// when the page loads. An optional simulated WAN delay is added, in this page, to every hop a
// call crosses (direct: browser → Tinybird, one; proxy: browser → BFF → Tinybird, two), so the
// hop the direct path saves shows even when everything runs on one machine.
// Each run has a client of its own (its own token, closed after): the page's client, its
// events and its path indicator are left alone.
import { createClient, SignedOutError } from './tinybird-bff.js';
import { renderCompareCharts, summarize } from './charts.js';

const $ = (id) => document.getElementById(id);
/** Daily request budgets below this are not spent on a comparison nobody asked for. */
const AUTO_RUN_MIN_BUDGET = 500;

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason);
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
});

/**
 * How many hops a call crosses: one to another origin (Tinybird) or to the BFF's own routes,
 * two through the BFF's proxy routes (the BFF then calls Tinybird).
 */
export function hops(url) {
  const u = new URL(url, window.location.href);
  if (u.origin !== window.location.origin) return 1;
  return /^\/api\/(pipes|sql)\b/.test(u.pathname) ? 2 : 1;
}

/** `fetch` with `hopMs` added per hop before the request leaves. */
function delayedFetch(hopMs) {
  return async (url, init = {}) => {
    if (hopMs > 0) await sleep(hops(url) * hopMs, init.signal ?? undefined);
    return window.fetch(url, init);
  };
}

/**
 * @param {{log: (kind: string, text: string) => void, onSignedOut: (err: Error) => void}} hooks
 */
export function createCompare({ log, onSignedOut }) {
  let running = null; // AbortController of the run in progress

  async function run(pipe, params, n, hopMs) {
    running?.abort(new DOMException('superseded', 'AbortError'));
    const controller = new AbortController();
    running = controller;
    const { signal } = controller;
    const button = $('compare-run');
    const status = $('compare-status');
    button.disabled = true;
    delete status.dataset.done;
    const client = createClient({ bff: '/api', mode: 'auto', fetch: delayedFetch(hopMs), autoRefresh: false });
    const samples = { direct: [], proxy: [] };
    const errors = { direct: 0, proxy: 0 };
    const retries = { direct: 0, proxy: 0 };
    const lastError = {};
    try {
      // One warm-up per path: the first direct call pays for the token, the CORS preflight
      // and a new connection, none of which a steady page pays again.
      for (const path of ['direct', 'proxy']) await client.query(pipe, params, { path, signal }).catch(rethrowFatal);
      // Tinybird counts `limits.rps` per token name, and the proxy's calls share the user's
      // bucket: pace the runs under it, or this would measure 429 waits.
      const rps = Number(client.tokenInfo()?.claims?.limits?.rps ?? 0);
      const gapMs = rps > 0 ? 1000 / (rps * 0.7) : 0;
      let nextAt = performance.now();
      for (let i = 0; i < n; i++) {
        // Alternate the order so neither path always runs on a warmer cache.
        for (const path of i % 2 ? ['proxy', 'direct'] : ['direct', 'proxy']) {
          const wait = nextAt - performance.now();
          if (wait > 0) await sleep(wait, signal);
          const t0 = performance.now();
          nextAt = t0 + gapMs;
          try {
            const res = await client.query(pipe, params, { path, signal });
            samples[path].push(performance.now() - t0);
            retries[path] += res.retries;
          } catch (err) {
            rethrowFatal(err);
            errors[path] += 1;
            lastError[path] = err.message;
          }
        }
        status.textContent = `Running ${pipe}: ${i + 1} / ${n} per path…`;
      }
      const stats = { direct: summarize(samples.direct), proxy: summarize(samples.proxy) };
      renderCompareCharts($('compare-hist'), $('compare-box'), samples, stats);
      fillStats(stats, errors, retries);
      status.textContent = summary(pipe, n, hopMs, stats, lastError, gapMs ? Math.floor(rps * 0.7) : 0);
      status.dataset.done = 'true';
      log('compare', `Compared ${pipe} ×${n} (+${hopMs} ms per hop): direct p50 ${ms(stats.direct?.p50)}, proxy p50 ${ms(stats.proxy?.p50)}`);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof SignedOutError) onSignedOut(err);
      else {
        status.textContent = `Comparison failed: ${err.message}`;
        status.dataset.done = 'failed';
      }
    } finally {
      client.close();
      if (running === controller) {
        running = null;
        button.disabled = false;
      }
    }
  }

  return {
    run,
    /**
     * The run on page load, unless the tenant's daily budget is too small to spend on it.
     * @param {string} pipe
     * @param {object} params
     * @param {{tenant: string, budget: object|null}|null} budget
     */
    auto(pipe, params, budget) {
      const daily = budget?.budget?.limits?.daily_requests;
      if (daily != null && daily < AUTO_RUN_MIN_BUDGET) {
        const status = $('compare-status');
        status.textContent = `Not run on load: tenant ${budget.tenant}'s budget is ${daily} requests a day, and a comparison spends ${2 * Number($('compare-n').value) + 2}. Press Run to spend them.`;
        status.dataset.done = 'skipped';
        return Promise.resolve();
      }
      return run(pipe, params, Number($('compare-n').value), Number($('compare-delay').value));
    },
    /** Stops a run in progress and clears the results (on sign-out). */
    reset() {
      running?.abort(new DOMException('signed out', 'AbortError'));
      running = null;
      $('compare-run').disabled = false;
      $('compare-stats').tBodies[0].replaceChildren();
      $('compare-status').textContent = 'Runs when the page loads.';
      delete $('compare-status').dataset.done;
    },
  };
}

function rethrowFatal(err) {
  if (err instanceof SignedOutError || err?.name === 'AbortError') throw err;
}

function summary(pipe, n, hopMs, stats, lastError, paced) {
  const d = stats.direct?.p50;
  const p = stats.proxy?.p50;
  const parts = [`${n} runs of ${pipe} per path`];
  parts.push(hopMs ? `with +${hopMs} ms simulated per hop (direct crosses 1, proxy 2)` : 'with no added delay (everything runs on this machine)');
  let text = `${parts.join(', ')}: direct p50 ${ms(d)}, proxy p50 ${ms(p)}`;
  if (d != null && p != null) text += ` (proxy ${p >= d ? '+' : '−'}${Math.abs(p - d).toFixed(1)} ms).`;
  else text += '.';
  if (paced) text += ` Paced to ${paced} requests/s, under the token's limits.rps.`;
  const failed = Object.entries(lastError).map(([path, e]) => `${path}: ${e}`).join('; ');
  if (failed) text += ` Failures — ${failed}`;
  return text;
}

function fillStats(stats, errors, retries) {
  const tbody = $('compare-stats').tBodies[0];
  tbody.replaceChildren(...['direct', 'proxy'].map((path) => {
    const s = stats[path];
    const tr = document.createElement('tr');
    tr.dataset.path = path;
    const name = tr.insertCell();
    const dot = document.createElement('span');
    dot.className = `dot dot-${path}`;
    name.append(dot, path);
    const values = s ? [s.n, ms(s.min), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), ms(s.mean)] : [0, '–', '–', '–', '–', '–', '–'];
    for (const v of [...values, retries[path], errors[path]]) {
      const td = tr.insertCell();
      td.className = 'num';
      td.textContent = String(v);
    }
    return tr;
  }));
}

const ms = (v) => (v == null ? '–' : `${v.toFixed(1)} ms`);
