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
  // The refusal should come before anything is asked of the patient (POST /api/join-info); if the
  // server only refuses at the join, it comes right after the device check.
  const first = await Promise.race([screen(page, 'refused').then(() => 'refused'), screen(page, 'intro').then(() => 'intro')]);
  if (first === 'intro') {
    console.log('NOTE b): /api/join-info did not refuse; the refusal comes at the WebSocket join, after the device check');
    await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
    await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
    await screen(page, 'refused');
  }
  const text = await page.locator('[data-screen="refused"] [role="alert"]').innerText();
  assert.match(text, /au cabinet/, `French refusal naming the in-person rule: ${text}`);
  assert.match(text, /Prenez d’abord rendez-vous|Prenez d'abord rendez-vous|rendez-vous/, 'and the next step');
  assert.match(await page.locator('[data-screen="refused"] .code').innerText(), /in_person/);
  const probes = await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    const live = w.__streams.flatMap((/** @type {MediaStream} */ s) => s.getTracks()).filter((/** @type {MediaStreamTrack} */ t) => t.readyState === 'live').length;
    return { pcs: w.__pcs.length, liveTracks: live, gum: w.__gum };
  });
  assert.equal(probes.pcs, 0, 'no peer connection');
  assert.equal(probes.liveTracks, 0, 'camera and microphone released');
  if (first === 'refused') assert.equal(probes.gum, 0, 'no camera request at all');
  await checkAxe(page, 'patient refused');
  await shot(page, 'patient-06-refused');

  // The English switch shows the server's English words.
  await page.getByRole('button', { name: 'Switch to English' }).click();
  assert.match(await page.locator('[data-screen="refused"] [role="alert"]').innerText(), /in-person/);
  await shot(page, 'patient-07-refused-en');
  watch.check();
  await ctx.close();
});
