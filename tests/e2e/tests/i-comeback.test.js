// i) An accidental hang-up and the way back. The patient (consent asked on the join page, the
// kiné admits by hand, a phone with two cameras, the back one chosen) hangs up: "Raccrocher" asks
// first, then the screen offers "Revenir dans la séance". Coming back goes straight into the call:
// no device check, no consent, no waiting room, no new admission by the kiné, and the back camera
// is still the one sent. Needs the server side of the agreed contract (a patient's `hangup` keeps
// the seat's admission, consent and attestation for the session).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, checkAxe, kineApi, kineEnds, kineJoins, launch, loginDashboard, newContext, patientHangsUp, patientToJoin, recordScreens, screen, shot, waitConnected, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Browser} */
let phone;
before(async () => {
  browser = await launch();
  // Chromium's second fake camera is a depth (Y16) one that WebRTC cannot encode: a third, colour
  // one stands for the phone's back camera.
  phone = await launch({ cameras: 3 });
});
after(async () => {
  await browser?.close();
  await phone?.close();
});

test('i) the patient hangs up by mistake and comes back without checks nor a new admission', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Retour', consent: false });
  const session = await api.session(p.id, { autoAdmit: false, consentOnJoin: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(phone, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await patientToJoin(page, link.url);
  await screen(page, 'consent');
  await page.getByLabel('J’ai lu ce texte et je suis d’accord.').check();
  await page.getByRole('button', { name: /Je suis d’accord/ }).click();
  await screen(page, 'waiting');
  await kine.locator('#call-layer [data-admit]').click();
  await screen(page, 'call');
  await Promise.all([waitConnected(page), waitConnected(kine)]);

  // The back camera.
  for (let i = 0; i < 2; i++) {
    await page.getByRole('button', { name: 'Changer de caméra' }).click();
    await page.waitForFunction(() => !document.querySelector('.ctl-switch')?.hasAttribute('disabled'));
  }
  const sentCamera = () =>
    page.evaluate(() => {
      for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
        if (pc.connectionState !== 'connected') continue;
        const s = pc.getSenders().find((x) => x.track?.kind === 'video' && x.track.readyState === 'live');
        if (s?.track) return s.track.getSettings().deviceId ?? null;
      }
      return null;
    });
  await page.waitForTimeout(1_000);
  const back = await sentCamera();
  assert.ok(back);

  // "Raccrocher", then "Rester dans la séance": nothing happens.
  await page.locator('.ctl-hangup').click();
  await page.getByRole('dialog', { name: 'Raccrocher ?' }).waitFor();
  await page.getByRole('button', { name: 'Rester dans la séance' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await screen(page, 'call');
  await assertFramesRise(page, 'patient still in the call');

  // Hang up for real: the kiné stays, the patient sees the way back.
  await patientHangsUp(page);
  await screen(page, 'left');
  await page.getByRole('heading', { name: 'Vous avez quitté la séance' }).waitFor();
  await checkAxe(page, 'patient left');
  await shot(page, 'patient-16-left');
  await kine.getByText(/a quitté l’appel/).waitFor({ timeout: 10_000 });
  await shot(kine, 'dashboard-12-patient-left');

  await recordScreens(page);
  await page.getByRole('button', { name: 'Revenir dans la séance' }).click();
  await screen(page, 'call', 20_000);
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await assertFramesRise(kine, 'kiné after the return');
  await assertFramesRise(page, 'patient after the return');
  const screens = await page.evaluate(() => /** @type {any} */ (window).__screens);
  for (const skipped of ['devices', 'consent', 'waiting', 'intro']) assert.ok(!screens.includes(skipped), `no ${skipped} screen on the way back (saw ${screens.join(' -> ')})`);
  assert.equal(await kine.locator('#call-layer [data-admit]').count(), 0, 'the kiné was not asked to admit again');
  assert.equal(await sentCamera(), back, 'the chosen camera is kept');
  await shot(page, 'patient-17-back');

  await kineEnds(kine);
  await screen(page, 'ended');
  watch.check();
  await ctx.close();
  await kineCtx.close();
});
