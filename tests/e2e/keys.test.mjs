// The page's "API keys" section against the real demo binary (docs/api-keys.md): alice, a tenant
// admin of acme, creates a key, copies it from the show-once dialog, and a machine client (Node's
// fetch, no cookie: what curl would send) reads acme's rows with it and nothing else; she rolls it
// and revokes it on the page and the same fetch is refused. The secret is nowhere on the page
// (DOM, storage, URLs) once the dialog is closed. Bob, no admin, has no such section; the
// platform admin has, over every tenant.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openApp, withApp, unexpectedConsoleErrors } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Signs in through the form; waits for the dashboard only (not the comparison: no need here). */
async function signIn(page, user) {
  await page.locator(`[data-testid=demo-login-${user}]`).click();
  await page.locator('[data-testid=login-submit]').click();
  await page.locator('[data-testid=dashboard-view]').waitFor({ state: 'visible' });
}

/** What curl -H "Authorization: Bearer $KEY" sends: the key and nothing else (no cookie). */
function withKey(server, key, path) {
  return fetch(`${server.app}${path}`, { headers: { Authorization: `Bearer ${key}` } });
}

/** The secret from the open show-once dialog, through its copy button and the clipboard. */
async function copySecret(page) {
  const dialog = page.locator('[data-testid=key-secret-dialog]');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await dialog.locator('[data-testid=key-secret-warning]').textContent(), /only time it is shown/);
  const shown = await dialog.locator('[data-testid=key-secret]').textContent();
  await dialog.locator('[data-testid=key-copy]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=key-copied]').textContent.startsWith('Copied'));
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, shown, 'the copy button copies the key shown');
  assert.match(copied, /^tbk_live_[0-9a-f]{12}_\S+$/);
  return copied;
}

/** Closes the dialog and checks the page kept no trace of `secret`'s secret part. */
async function closeAndCheckForgotten(page, log, secret) {
  await page.locator('[data-testid=key-secret-close]').click();
  await page.locator('[data-testid=key-secret-dialog]').waitFor({ state: 'hidden' });
  const tail = secret.slice(secret.lastIndexOf('_') + 1);
  const traces = await page.evaluate((t) => {
    const found = [];
    if (document.documentElement.outerHTML.includes(t)) found.push('DOM');
    for (const f of document.querySelectorAll('input, textarea, select')) if (f.value.includes(t)) found.push(`field ${f.id}`);
    for (const s of [localStorage, sessionStorage]) {
      for (let i = 0; i < s.length; i++) if ((s.key(i) + s.getItem(s.key(i))).includes(t)) found.push('storage');
    }
    if (window.location.href.includes(t)) found.push('URL');
    return found;
  }, tail);
  assert.deepEqual(traces, [], 'the secret is gone from the page once the dialog closed');
  assert.deepEqual(log.requests.filter((r) => r.url.includes(tail)).map((r) => r.url), [], 'never in a URL');
}

test('a tenant admin creates, copies, uses, rolls and revokes a key on the page', { timeout: 60_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, context, log }) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.app });
    await signIn(page, 'alice');
    const section = page.locator('[data-testid=keys-section]');
    await page.locator('[data-testid=keys-section][data-loaded]').waitFor({ state: 'visible' });
    assert.match(await section.locator('[data-testid=keys-status]').textContent(), /0 active · acme/);

    // An error from the API is shown as the API says it: no scope ticked.
    await section.locator('[data-testid=key-name]').fill('e2e export');
    await section.locator('[data-testid=key-create]').click();
    const formError = section.locator('[data-testid=key-form-error]');
    await formError.waitFor({ state: 'visible' });
    assert.ok((await formError.textContent()).length > 10, await formError.textContent());

    // Create: the scopes offered are what `grantable` gives.
    await section.locator('[data-testid=key-scope-recent_orders]').check();
    await section.locator('[data-testid=key-rps]').fill('20');
    await section.locator('[data-testid=key-create]').click();
    const secret = await copySecret(page);
    const curl = await page.locator('[data-testid=key-secret-curl]').textContent();
    assert.ok(curl.includes(`curl -H "Authorization: Bearer $KEY" "${server.app}/api/pipes/recent_orders.json"`), curl);
    await closeAndCheckForgotten(page, log, secret);
    const id = secret.split('_')[2];
    const row = section.locator(`[data-testid=keys-table] tr[data-id="${id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('[data-col=prefix]').textContent(), `tbk_live_${id.slice(0, 4)}…`);
    assert.equal(await row.locator('[data-col=scopes]').textContent(), 'recent_orders');
    assert.equal(await row.locator('[data-col=limits]').textContent(), '20 rps');
    assert.equal(await row.locator('[data-col=last-used]').textContent(), 'never');
    assert.match(await section.locator('[data-testid=key-curl-example]').textContent(), /Bearer \$KEY" "http:\/\/.+\/api\/pipes\/recent_orders\.json"/);

    // The machine client: acme's rows only, whatever the URL asks for; nothing outside the scope.
    const read = await withKey(server, secret, '/api/pipes/recent_orders.json?org_id=globex&limit=50');
    assert.equal(read.status, 200, await read.clone().text());
    const rows = (await read.json()).data;
    assert.ok(rows.length > 0, 'rows');
    assert.deepEqual([...new Set(rows.map((r) => r.org_id))], ['acme']);
    assert.equal((await withKey(server, secret, '/api/pipes/top_products.json')).status, 403, 'outside its scopes');

    // Roll with no grace: a new secret, shown once; the old one stops at once.
    await row.locator('[data-testid=key-roll]').click();
    const confirm = page.locator('[data-testid=key-confirm-dialog]');
    await confirm.waitFor({ state: 'visible' });
    await confirm.locator('[data-testid=key-grace]').selectOption('0s');
    await confirm.locator('[data-testid=key-confirm-ok]').click();
    const rolled = await copySecret(page);
    assert.notEqual(rolled, secret);
    await closeAndCheckForgotten(page, log, rolled);
    const old = await withKey(server, secret, '/api/pipes/recent_orders.json');
    assert.equal(old.status, 401);
    assert.match((await old.json()).error, /replaced by a roll/);
    assert.equal((await withKey(server, rolled, '/api/pipes/recent_orders.json')).status, 200);

    // The list shows the key's use (counted by the BFF, written down or not yet): the reload
    // after the roll already sees the reads above.
    await row.locator('[data-col=today]').filter({ hasText: /^[1-9]\d* \(/ }).waitFor({ timeout: 5_000 });
    assert.notEqual(await row.locator('[data-col=last-used]').textContent(), 'never');

    // Revoke, after a confirm: the same fetch is a 401 that says why.
    await row.locator('[data-testid=key-revoke]').click();
    await confirm.waitFor({ state: 'visible' });
    assert.match(await confirm.locator('[data-testid=key-confirm-text]').textContent(), /refused/);
    await confirm.locator('[data-testid=key-confirm-ok]').click();
    await section.locator(`[data-testid=keys-table] tr[data-id="${id}"][data-status=revoked]`).waitFor();
    assert.equal(await row.locator('[data-testid=key-revoke]').count(), 0, 'no actions on a revoked key');
    const refused = await withKey(server, rolled, '/api/pipes/recent_orders.json');
    assert.equal(refused.status, 401);
    assert.match((await refused.json()).error, /revoked/);

    // The one failed resource is the create without a scope above (a 400).
    assert.deepEqual(unexpectedConsoleErrors(log, [/status of 400/]), []);
    assert.deepEqual(log.pageErrors, []);
  });
});

test('a user who is not an admin has no API keys section; the platform admin has, for every tenant', { timeout: 30_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    await signIn(page, 'bob');
    await page.locator('[data-testid=user-name]').waitFor();
    assert.equal(await page.locator('[data-testid=keys-section]').isVisible(), false);
    assert.deepEqual(log.requests.filter((r) => new URL(r.url).pathname.startsWith('/api/keys')), [], 'the page does not even ask');
    assert.deepEqual(unexpectedConsoleErrors(log), []);
    const admin = await openApp(browser, server);
    try {
      await signIn(admin.page, 'admin');
      await admin.page.locator('[data-testid=keys-section][data-loaded]').waitFor({ state: 'visible' });
      assert.match(await admin.page.locator('[data-testid=keys-status]').textContent(), /all tenants/);
      assert.deepEqual(unexpectedConsoleErrors(admin.log), []);
    } finally {
      await admin.context.close();
    }
  });
});
