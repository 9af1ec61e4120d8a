// h) The kiné logs in with "Se connecter avec Pro Santé Connect": through the real OpenID provider's
// login page (tests/oidc, started by run.sh, an account with the demo kiné's RPPS) to the
// dashboard; the logout goes to the provider too. The password form stays offered beside it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, launch, newContext, server, shot, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('h) Pro Santé Connect login through the provider to the dashboard', async () => {
  const s = server();
  const issuer = process.env.E2E_OIDC_ISSUER;
  assert.ok(issuer, 'run.sh starts the OpenID provider');
  const ctx = await newContext(browser, 'kine');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${s.url}/app`);
  const psc = page.getByRole('link', { name: 'Se connecter avec Pro Santé Connect' });
  await psc.waitFor();
  assert.ok(await page.getByLabel('Adresse e-mail').isVisible(), 'the password login is still offered');
  await checkAxe(page, 'login with Pro Santé Connect');
  await shot(page, 'kine-00-login-psc');
  watch.check();

  await psc.click();
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/interaction/`));
  await page.getByLabel('Identifiant').fill('kine');
  await page.getByLabel('Mot de passe').fill('cps-1234');
  await page.getByRole('button', { name: 'Se connecter' }).click();

  await page.getByRole('heading', { name: /Séances du/ }).waitFor({ timeout: 15_000 });
  assert.equal(new URL(page.url()).pathname, '/app/');
  const me = await page.evaluate(async () => (await fetch('/api/me', { headers: { Accept: 'application/json' } })).json());
  assert.equal(me.rpps, '10001234567', 'the kiné the provider named by RPPS');
  await shot(page, 'kine-01-dashboard-after-psc');

  // Logout: our session ends, and the browser goes to the provider's end-session page.
  await page.getByRole('button', { name: /Se déconnecter|Déconnexion/ }).click();
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/session/end`));
  const after = await ctx.request.get(`${s.url}/api/me`);
  assert.equal(after.status(), 401, 'logged out of telesoin');
  await ctx.close();
});
