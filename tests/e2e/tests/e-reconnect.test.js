// e) The patient's network drops for a few seconds (browser context offline): a banner says so,
// and the call recovers by itself (signaling reconnects, the kiné restarts ICE).
// e2) Two offers reach the patient back to back (a re-offer while a slow phone still applies the
// previous one): the patient applies them one after the other, without a script error, and the
// call and its data channel come up.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, kineApi, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, shot, waitChannel, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

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

test('e2) two offers back to back: the patient answers them in turn, the call and its channel come up', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Double Offre', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const kineWatch = watchPage(kine);
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  // The patient's socket, through the test: every offer from the server is delivered twice in a
  // row, as when the kiné re-offers before the phone has finished with the previous offer.
  let doubled = 0;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      ws.send(m);
      if (typeof m === 'string' && JSON.parse(m).type === 'offer') {
        doubled += 1;
        ws.send(m);
      }
    });
  });
  await patientToJoin(page, link.url);
  await screen(page, 'call');
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await Promise.all([waitChannel(page), waitChannel(kine)]);
  assert.ok(doubled >= 1, 'an offer was delivered twice');
  await assertFramesRise(page, 'patient');
  await assertFramesRise(kine, 'kiné');
  // The state message crosses the channel: the kiné sees the patient's microphone off.
  await page.getByRole('button', { name: 'Couper le micro' }).click();
  await kine.locator('#call-layer .call-remote-mic').getByText('Micro coupé').waitFor({ timeout: 5_000 });

  await kineEnds(kine);
  await screen(page, 'ended');
  watch.check();
  kineWatch.check();
  await ctx.close();
  await kineCtx.close();
});
