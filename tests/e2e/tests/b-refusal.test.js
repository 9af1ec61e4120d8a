// b) A patient with no in-person visit on record: the page shows the server's French refusal with
// the next step, and no media starts (no camera request, no peer connection).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, kineApi, launch, newContext, screen, shot, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('b) no in-person care on record: French refusal, no media', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Sans Cabinet', inPerson: false, consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(link.url);
  await screen(page, 'refused');
  const text = await page.locator('[data-screen="refused"] [role="alert"]').innerText();
  assert.match(text, /au cabinet/, `French refusal naming the in-person rule: ${text}`);
  assert.match(text, /Prenez d’abord rendez-vous|Prenez d'abord rendez-vous|rendez-vous/, 'and the next step');
  assert.match(await page.locator('[data-screen="refused"] .code').innerText(), /in_person/);
  const probes = await page.evaluate(() => ({ gum: /** @type {any} */ (window).__gum, pcs: /** @type {any} */ (window).__pcs.length }));
  assert.deepEqual(probes, { gum: 0, pcs: 0 }, 'no camera request and no peer connection');
  await checkAxe(page, 'patient refused');
  await shot(page, 'patient-06-refused');

  // The English switch shows the server's English words.
  await page.getByRole('button', { name: 'Switch to English' }).click();
  assert.match(await page.locator('[data-screen="refused"] [role="alert"]').innerText(), /in-person/);
  await shot(page, 'patient-07-refused-en');
  watch.check();
  await ctx.close();
});
