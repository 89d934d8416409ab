// The "API keys" section (docs/api-keys.md), shown to tenant admins and platform admins
// (`/api/me`'s `manages_keys`): create a key from what `grantable` offers, list the tenant's
// keys with their usage, roll and revoke them, and a curl example.
//
// The secret: it arrives once, in the answer that creates or rolls a key, and lives only in the
// show-once dialog (and in this module's `shown` while it is open). Closing the dialog, however
// it closes, empties it; it is never written to an attribute, storage or a URL, so after that
// the page holds nothing that could show it again. All DOM writes use textContent.

const REFRESH_MS = 15_000;

export function createKeysView(root, { log = () => {}, onSignedOut = () => {} } = {}) {
  const q = (id) => root.querySelector(`[data-testid="${id}"]`);
  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const secretDialog = q('key-secret-dialog');
  const confirmDialog = q('key-confirm-dialog');
  let timer = null;
  let last = null;
  let shown = null; // the secret on screen, only while the show-once dialog is open
  let pending = null; // what the confirm dialog's button does

  /** A management route with the session cookie (and the CSRF header on POSTs). */
  async function api(method, path, body) {
    const headers = method === 'POST' ? { 'X-BFF-CSRF': '1', 'Content-Type': 'application/json' } : {};
    const r = await fetch(path, {
      method, credentials: 'same-origin', headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401) { // this page sends no Authorization header: the session ended
      const err = new Error('Signed out: your session ended. Sign in again.');
      onSignedOut(err);
      throw err;
    }
    if (!r.ok) throw new Error(answer.error ?? `The server answered ${r.status}.`);
    return answer;
  }

  // ---------- the list ----------

  async function load() {
    try {
      last = await api('GET', '/api/keys');
      hide(q('keys-error'));
      render();
      root.dataset.loaded = 'true';
    } catch (err) {
      q('keys-error').textContent = `Could not list the keys: ${err.message}`;
      show(q('keys-error'));
    }
  }

  function render() {
    const keys = last?.keys ?? [];
    const active = keys.filter((k) => k.status === 'active').length;
    q('keys-status').textContent = `${active} active${last.platform_admin ? ' · all tenants' : ` · ${last.tenant}`}`;
    const body = q('keys-table').tBodies[0];
    body.replaceChildren(...(keys.length ? keys.map(row) : [emptyRow()]));
    renderScopes();
    renderExample();
  }

  function emptyRow() {
    const tr = el('tr');
    tr.append(el('td', { className: 'empty', colSpan: 11 }, 'No keys yet: create one above.'));
    return tr;
  }

  function row(k) {
    const tr = el('tr');
    tr.dataset.id = k.id;
    tr.dataset.status = k.status;
    const now = Date.now() / 1000;
    const name = el('td', {}, k.name);
    if (last.platform_admin) name.append(' ', el('span', { className: 'tag' }, k.tenant));
    const scopes = [...k.scopes.pipes, ...k.scopes.datasources.map((d) => `SQL: ${d}`)];
    const limits = [
      k.rps ? `${k.rps} rps` : null,
      k.quota ? `${k.quota.requests}/${k.quota.period}` : null,
      k.expires_at ? `expires ${date(k.expires_at)}` : null,
    ].filter(Boolean);
    const u = k.usage ?? {};
    const tb = k.tinybird_usage_24h;
    const tinybird = !last.usage_enabled ? '–'
      : tb ? `${tb.requests} (${tb.errors} err) · ${tb.read_rows} rows · ${bytes(tb.read_bytes)}` : '0';
    const status = k.status === 'active' && k.previous_valid_until > now
      ? `active · old secret until ${date(k.previous_valid_until)}` : k.status;
    const cells = [
      name,
      cell('prefix', el('code', {}, `${k.prefix}…`)),
      cell('scopes', scopes.join(', ') || '–'),
      cell('limits', limits.join(' · ') || 'none'),
      cell('created', `${date(k.created_at)} by ${k.created_by}`),
      cell('last-used', k.last_used_at ? date(k.last_used_at) : 'never'),
      cell('today', `${u.today_requests ?? 0} (${u.today_errors ?? 0} err)`, 'num'),
      cell('month', `${u.month_requests ?? 0} (${u.month_errors ?? 0} err)`, 'num'),
      cell('tinybird', tinybird, 'num'),
      cell('status', status),
    ];
    const actions = cell('actions', '', 'actions');
    if (k.status === 'active') {
      actions.append(
        button('Roll', 'key-roll', () => confirmRoll(k)),
        ' ',
        button('Revoke', 'key-revoke', () => confirmRevoke(k)),
      );
    }
    tr.append(...cells, actions);
    return tr;
  }

  function cell(col, content, className = '') {
    const td = el('td', { className });
    td.dataset.col = col;
    td.append(content);
    return td;
  }

  function button(text, testid, onClick) {
    const b = el('button', { type: 'button', className: 'btn btn-small' }, text);
    b.dataset.testid = testid;
    b.addEventListener('click', onClick);
    return b;
  }

  // ---------- creating ----------

  function renderScopes() {
    const box = q('key-scopes');
    const { pipes = [], datasources = [] } = last?.grantable ?? {};
    const ticked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    const boxes = [
      ...pipes.map((p) => scopeBox('pipe', p, p)),
      ...datasources.map((d) => scopeBox('datasource', d, `${d} (SQL)`)),
    ];
    for (const b of boxes) b.querySelector('input').checked = ticked.has(b.querySelector('input').value);
    const none = el('p', { className: 'small muted' }, last?.tenant
      ? `Your tenant's grants give its keys nothing to read (see [keys] roles in the config).`
      : 'You have no tenant: create keys for a tenant with POST /api/keys {tenant} or tinybird-bff keys create --tenant.');
    box.replaceChildren(el('legend', {}, 'Reads'), ...(boxes.length ? boxes : [none]));
  }

  function scopeBox(kind, name, label) {
    const l = el('label');
    const input = el('input', { type: 'checkbox', value: `${kind}:${name}` });
    input.dataset.testid = `key-scope-${name}`;
    l.append(input, label);
    return l;
  }

  async function create(ev) {
    ev.preventDefault();
    const err = q('key-form-error');
    hide(err);
    const ticked = [...q('key-scopes').querySelectorAll('input:checked')].map((i) => i.value.split(':'));
    const body = {
      name: q('key-name').value.trim(),
      pipes: ticked.filter(([k]) => k === 'pipe').map(([, n]) => n),
      datasources: ticked.filter(([k]) => k === 'datasource').map(([, n]) => n),
    };
    if (q('key-expiry').value) body.expires_in = q('key-expiry').value;
    if (q('key-rps').value) body.rps = Number(q('key-rps').value);
    if (q('key-quota').value) body.quota = { requests: Number(q('key-quota').value), period: q('key-period').value };
    const submit = q('key-create');
    submit.disabled = true;
    try {
      const made = await api('POST', '/api/keys', body);
      q('key-form').reset();
      for (const i of q('key-scopes').querySelectorAll('input')) i.checked = false;
      log('keys', `Created key "${made.key.name}" (${made.key.prefix}…)`);
      showSecret(made, `Your new key "${made.key.name}"`);
      load();
    } catch (e) {
      err.textContent = e.message;
      show(err);
    } finally {
      submit.disabled = false;
    }
  }

  // ---------- the secret, once ----------

  function showSecret({ key, secret }, title) {
    shown = secret;
    q('key-secret-title').textContent = title;
    q('key-secret').textContent = secret;
    q('key-secret-curl').textContent = `KEY='${secret}'\n${curl(key.scopes)}`;
    q('key-copied').textContent = '';
    secretDialog.showModal();
  }

  function forgetSecret() {
    shown = null;
    for (const id of ['key-secret', 'key-secret-curl', 'key-copied']) q(id).textContent = '';
  }

  async function copySecret() {
    if (!shown) return;
    try {
      await navigator.clipboard.writeText(shown);
      q('key-copied').textContent = 'Copied to the clipboard.';
    } catch {
      // No clipboard permission: select the key for a manual copy instead.
      window.getSelection().selectAllChildren(q('key-secret'));
      q('key-copied').textContent = 'The browser refused the clipboard: the key is selected, copy it with Ctrl+C.';
    }
  }

  /** The curl line for a key that reads `scopes`, with `$KEY` standing for the secret. */
  function curl(scopes) {
    const origin = window.location.origin;
    const pipe = scopes?.pipes?.[0];
    const ds = scopes?.datasources?.[0];
    if (!pipe && ds) {
      return `curl -G -H "Authorization: Bearer $KEY" --data-urlencode "q=SELECT count() FROM ${ds}" "${origin}/api/sql"`;
    }
    return `curl -H "Authorization: Bearer $KEY" "${origin}/api/pipes/${pipe ?? 'PIPE'}.json"`;
  }

  function renderExample() {
    const scopes = last?.keys?.find((k) => k.status === 'active')?.scopes ?? last?.grantable;
    q('key-curl-example').textContent = `# KEY is the secret shown when the key was created (or last rolled)\n${curl(scopes)}`;
  }

  // ---------- roll and revoke, after a confirm ----------

  function ask({ title, text, ok, grace, action }) {
    q('key-confirm-title').textContent = title;
    q('key-confirm-text').textContent = text;
    q('key-confirm-ok').textContent = ok;
    toggle(q('key-grace-box'), grace);
    hide(q('key-confirm-error'));
    pending = action;
    confirmDialog.showModal();
  }

  function confirmRoll(k) {
    ask({
      title: `Roll "${k.name}" (${k.prefix}…)`,
      text: 'A new secret is made and shown once. The old one keeps working for the time you choose, so the clients using it can be given the new one.',
      ok: 'Roll',
      grace: true,
      action: async () => {
        const rolled = await api('POST', `/api/keys/${encodeURIComponent(k.id)}/roll`, { grace: q('key-grace').value });
        log('keys', `Rolled key "${k.name}" (${k.prefix}…), grace ${q('key-grace').value}`);
        return () => showSecret(rolled, `New secret for "${k.name}"`);
      },
    });
  }

  function confirmRevoke(k) {
    const ttl = Math.round((last?.token_ttl_seconds ?? 300) / 60);
    ask({
      title: `Revoke "${k.name}" (${k.prefix}…)?`,
      text: `Every request with this key is refused from now on, on every instance, within a second. This cannot be undone. Tinybird tokens already minted with it work until they expire (at most ${ttl} min).`,
      ok: 'Revoke',
      grace: false,
      action: async () => {
        await api('POST', `/api/keys/${encodeURIComponent(k.id)}/revoke`);
        log('keys', `Revoked key "${k.name}" (${k.prefix}…)`);
        return null;
      },
    });
  }

  async function confirmed() {
    const ok = q('key-confirm-ok');
    ok.disabled = true;
    try {
      const then = await pending?.();
      pending = null;
      confirmDialog.close();
      then?.();
      await load();
    } catch (e) {
      q('key-confirm-error').textContent = e.message;
      show(q('key-confirm-error'));
    } finally {
      ok.disabled = false;
    }
  }

  // ---------- wiring ----------

  q('key-form').addEventListener('submit', create);
  q('key-copy').addEventListener('click', copySecret);
  q('key-secret-close').addEventListener('click', () => secretDialog.close());
  secretDialog.addEventListener('close', forgetSecret);
  q('key-confirm-ok').addEventListener('click', confirmed);
  q('key-confirm-cancel').addEventListener('click', () => confirmDialog.close());
  confirmDialog.addEventListener('close', () => { pending = null; });

  return {
    show() {
      show(root);
      clearInterval(timer);
      load();
      timer = setInterval(load, REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
      timer = null;
      last = null;
      if (secretDialog.open) secretDialog.close();
      if (confirmDialog.open) confirmDialog.close();
      forgetSecret();
      q('keys-table').tBodies[0].replaceChildren();
      q('key-form').reset();
      hide(q('key-form-error'));
      hide(root);
      delete root.dataset.loaded;
    },
    refresh: load,
  };
}

const show = (e) => e.classList.remove('hidden');
const hide = (e) => e.classList.add('hidden');
const toggle = (e, on) => e.classList.toggle('hidden', !on);
const date = (unix) => new Date(unix * 1000).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}
