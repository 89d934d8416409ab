// The demo page's token card and "what the browser holds": the current JWT's claims, its
// countdown by the server's clock, and the request each path sends (the direct one carries the
// JWT, readable by page scripts; the proxy one only the HttpOnly cookie).
// DOM writes use textContent and classes only (strict CSP), like app.js.

const $ = (id) => document.getElementById(id);
const clock = (unix) => new Date(unix * 1000).toLocaleTimeString();
function duration(s) {
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/**
 * @param {import('./tinybird-bff.js').TinybirdBffClient} tb
 * @param {() => {pipe: string, params: object}} example the call the exposure card shows
 */
export function createTokenView(tb, example) {
  function render() {
    const info = tb.tokenInfo();
    const cd = $('token-countdown');
    if (!info) {
      cd.textContent = tb.getMode() === 'proxy' ? 'none (proxy mode)' : '–';
      cd.dataset.seconds = '';
      $('kpi-token').textContent = tb.getMode() === 'proxy' ? 'no token' : '–';
      $('token-progress').value = 0;
      return;
    }
    const left = Math.floor(info.secondsLeft);
    cd.textContent = duration(left);
    cd.dataset.seconds = String(left);
    $('kpi-token').textContent = duration(left);
    const progress = $('token-progress');
    progress.value = Math.max(0, Math.min(1, info.secondsLeft / info.expiresIn));
    progress.classList.toggle('low', info.secondsLeft <= info.expiresAt - info.refreshAt);
    $('token-name').textContent = info.name;
    $('token-host').textContent = info.host;
    $('token-expires').textContent = `${clock(info.expiresAt)} (refresh at ${clock(info.refreshAt)})`;
    const claims = JSON.stringify(info.claims, null, 2);
    if ($('token-claims').textContent !== claims) {
      $('token-claims').textContent = claims;
      exposure();
    }
  }

  function exposure() {
    const info = tb.tokenInfo();
    const { pipe, params } = example();
    const qs = new URLSearchParams(Object.entries(params)).toString();
    const direct = $('exposure-direct');
    if (info) {
      // Pipes carry fixed_params; data sources (SQL) carry a filter Tinybird adds to every read.
      const filters = (info.claims.scopes ?? []).map((s) => (s.type === 'DATASOURCES:READ'
        ? `${s.resource} (data source): filter ${s.filter || '(none: every row)'}`
        : `${s.resource}: ${Object.entries(s.fixed_params ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '(no row filter)'}`));
      direct.textContent = [
        `GET ${info.host}/v0/pipes/${pipe}.json?${qs}`,
        `Authorization: Bearer ${info.token.slice(0, 24)}…${info.token.slice(-8)}`,
        `  (${info.token.length} chars, readable by page scripts)`,
        '',
        'Row filters in the token (fixed_params, filter):',
        ...filters.map((f) => `  ${f}`),
      ].join('\n');
    } else {
      direct.textContent = tb.getMode() === 'proxy' ? 'Proxy mode: no token fetched.' : 'No token fetched yet.';
    }
    $('exposure-proxy').textContent = [
      `GET /api/pipes/${pipe}.json?${qs}`,
      'Cookie: session (HttpOnly: sent by the browser, invisible to scripts)',
      '',
      `document.cookie → ${JSON.stringify(document.cookie)}`,
      'Tinybird token in the browser: none',
    ].join('\n');
  }

  return {
    render,
    exposure,
    reset() {
      $('token-claims').textContent = '{}';
      $('token-host').textContent = '–';
      $('token-name').textContent = '–';
      $('token-expires').textContent = '–';
    },
  };
}
