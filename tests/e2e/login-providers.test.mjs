// Browser tests of the sign-in options on the login form: one "Sign in with ..."
// link per identity provider from GET /api/providers, and no password form when
// the BFF has no local users. The demo has no providers, so the page's call to
// /api/providers is answered by the test (page.route); the demo's own answer is
// checked as is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withApp } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Reloads the page with `/api/providers` answering `body`. */
async function withProviders(page, body) {
  await page.route('**/api/providers', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) }));
  await page.reload();
  await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
  // The page renders the answer after it arrives: wait for what it must show or hide, so the
  // assertions that follow do not race the render.
  for (const p of body.providers.filter((p) => p.login_url.startsWith('/') && !p.login_url.startsWith('//'))) {
    await page.locator(`[data-testid=provider-${p.name}]`).waitFor({ state: 'visible' });
  }
  await page.locator('[data-testid=login-form]').waitFor({ state: body.local ? 'visible' : 'hidden' });
}

const SSO = { name: 'acme-sso', display_name: 'Acme SSO', login_url: '/auth/acme-sso/login' };

test('the demo shows the password form and no provider links', { timeout: 60_000 }, async () => {
  await withApp(browser, {}, async ({ server, page }) => {
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
    const body = await (await fetch(`${server.app}/api/providers`)).json();
    assert.deepEqual(body, { local: true, providers: [] });
    assert.equal(await page.isVisible('[data-testid=login-form]'), true);
    assert.equal(await page.isVisible('[data-testid=login-providers]'), false);
    assert.equal(await page.isVisible('[data-testid=login-or]'), false);
  });
});

test('providers become sign-in links; without local users the password form is hidden', { timeout: 60_000 }, async () => {
  await withApp(browser, {}, async ({ page }) => {
    await withProviders(page, { local: false, providers: [SSO, { name: 'evil', display_name: 'Evil', login_url: '//evil.example/login' }] });
    const links = page.locator('[data-testid=login-providers] a');
    assert.equal(await links.count(), 1, 'a login_url off this site is not shown');
    assert.equal(await links.first().textContent(), 'Sign in with Acme SSO');
    assert.equal(await links.first().getAttribute('href'), '/auth/acme-sso/login?return_to=/');
    assert.equal(await page.isVisible('[data-testid=login-form]'), false);
    assert.equal(await page.isVisible('[data-testid=demo-logins]'), false);
    assert.equal(await page.isVisible('[data-testid=login-or]'), false);

    await withProviders(page, { local: true, providers: [SSO] });
    assert.equal(await page.isVisible('[data-testid=provider-acme-sso]'), true);
    assert.equal(await page.isVisible('[data-testid=login-or]'), true);
    assert.equal(await page.isVisible('[data-testid=login-form]'), true);
  });
});
