// c) A minor: the parent attestation step appears, and the call proceeds only after it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, checkAxe, kineApi, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, shot, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('c) a minor: parent attestation first, then the call', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Léo Petit', birth: '2013-06-02', consent: true, representative: { name: 'Sophie Petit', relation: 'mère' } });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await patientToJoin(page, link.url);
  await screen(page, 'attest-parent');
  await checkAxe(page, 'patient attestation');
  await shot(page, 'patient-08-attest-parent');

  // Not admitted while the attestation is missing, even with auto-admit and the kiné present.
  await page.waitForTimeout(1_500);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pcs.length), 0, 'no peer connection before the attestation');
  await screen(page, 'attest-parent');

  await page.getByLabel('Je confirme qu’un parent ou un adulte autorisé est présent.').check();
  await page.getByRole('button', { name: 'Confirmer' }).click();
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await assertFramesRise(page, 'patient');
  await screen(page, 'call');

  await kineEnds(kine);
  await screen(page, 'ended');
  watch.check();
  await ctx.close();
  await kineCtx.close();
});
