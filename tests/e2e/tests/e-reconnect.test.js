// e) The patient's network drops for a few seconds (browser context offline): a banner says so,
// and the call recovers by itself (signaling reconnects, the kiné restarts ICE).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, kineApi, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, shot, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('e) the patient goes offline for a few seconds and the call recovers', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Réseau Fragile', consent: true });
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
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await assertFramesRise(page, 'patient before the drop');

  await ctx.setOffline(true);
  const banner = page.locator('.call-banner');
  await banner.waitFor({ state: 'visible', timeout: 10_000 });
  assert.match(await banner.innerText(), /Reconnexion/);
  await shot(page, 'patient-09-reconnecting');
  await page.waitForTimeout(4_000);
  await ctx.setOffline(false);

  await banner.waitFor({ state: 'hidden', timeout: 20_000 });
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await screen(page, 'call');
  await assertFramesRise(page, 'patient after the drop');
  await assertFramesRise(kine, 'kiné after the drop');
  await shot(page, 'patient-10-recovered');

  await api.billableAtLeast(session.id, 2);
  await kineEnds(kine);
  await screen(page, 'ended');
  watch.check();
  await ctx.close();
  await kineCtx.close();
});
