// h) The call room without traps, and its controls:
// h1 the kiné opens the room hours early, leaves it ("Quitter la salle"), and the session stays
//    scheduled (the patient's link is not active yet; the kiné can come back);
// h2 in a call: the other side's microphone/camera states, the timer, the camera switch (two fake
//    cameras on the phone), a chat both ways that never goes through the server (every signaling
//    frame recorded), the kiné sharing a screen that reaches the patient large, then the kiné's
//    network dropping: the patient's indicator blames the kiné's side, not the patient's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertFramesRise,
  checkAxe,
  kineApi,
  kineEnds,
  kineJoins,
  launch,
  loginDashboard,
  newContext,
  patientToJoin,
  recordSocketFrames,
  screen,
  shot,
  waitChannel,
  waitConnected,
  waitFramesRise,
  watchPage,
} from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Browser} the patient's phone: two cameras (front and back) */
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

test('h1) the kiné opens the room two hours early, leaves it, and the session stays scheduled', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Avance', consent: true });
  const startsAt = new Date(Date.now() + 2 * 3600_000);
  const session = await api.session(p.id, { startsAt });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const kineWatch = watchPage(kine);
  await loginDashboard(kine);
  await kineJoins(kine, session.id);
  // The room opens; the kiné is told that the patient can come only from the window's start.
  await kine.getByText(/Vous êtes en avance/).waitFor({ timeout: 15_000 });
  // The kiné is really in the room (admitted by the server), not shown a refusal.
  assert.equal(await kine.locator('#call-layer .alert').count(), 0, 'no refusal in the room');
  const deadline = Date.now() + 10_000;
  let inRoom = false;
  while (!inRoom && Date.now() < deadline) {
    const s = await api.get(`/api/sessions/${session.id}`);
    inRoom = (s.live ?? []).some((/** @type {{role: string, connected: boolean, admitted: boolean}} */ x) => x.role === 'kine' && x.connected && x.admitted);
    if (!inRoom) await kine.waitForTimeout(300);
  }
  assert.ok(inRoom, 'the server has the kiné in the room two hours early');
  await checkAxe(kine, 'kiné early in the room');
  await shot(kine, 'dashboard-08-early-room');

  // The patient's link is not active yet, whoever waits in the room.
  const patientCtx = await newContext(browser, 'patient');
  const patient = await patientCtx.newPage();
  await patient.goto(link.url);
  await screen(patient, 'refused');
  await patient.getByText(/pas encore actif/).waitFor();

  // "Quitter la salle": no confirmation needed, nothing ends.
  await kine.locator('#call-layer').getByRole('button', { name: 'Quitter la salle' }).click();
  await kine.locator('#call-layer').waitFor({ state: 'hidden' });
  const after1 = await api.get(`/api/sessions/${session.id}`);
  assert.ok(after1.status === 'scheduled' || after1.status === 'live', `the session stays open (status ${after1.status})`);
  // And the kiné may come back, and leave again.
  await kineJoins(kine, session.id);
  await kine.getByText(/Vous êtes en avance/).waitFor({ timeout: 15_000 });
  await kine.locator('#call-layer').getByRole('button', { name: 'Quitter la salle' }).click();
  await kine.locator('#call-layer').waitFor({ state: 'hidden' });
  await kine.waitForTimeout(500);
  const after2 = await api.get(`/api/sessions/${session.id}`);
  assert.notEqual(after2.status, 'ended', 'leaving twice ends nothing');
  assert.notEqual(after2.status, 'cancelled');

  kineWatch.check();
  await patientCtx.close();
  await kineCtx.close();
});

test('h2) states, timer, camera switch, chat never through the server, screen sharing, network blame', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Contrôles', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const kineWatch = watchPage(kine);
  const kineFrames = recordSocketFrames(kine);
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const patientCtx = await newContext(phone, 'patient');
  const patient = await patientCtx.newPage();
  const patientWatch = watchPage(patient);
  const patientFrames = recordSocketFrames(patient);
  await patientToJoin(patient, link.url);
  await screen(patient, 'call');
  await Promise.all([waitConnected(patient), waitConnected(kine)]);
  await assertFramesRise(kine, 'kiné');
  await Promise.all([waitChannel(patient), waitChannel(kine)]);

  // Timer on both sides, advancing.
  const timer = patient.locator('.call-timer');
  await timer.waitFor();
  const t0 = await timer.innerText();
  await patient.waitForTimeout(2_100);
  assert.notEqual(await timer.innerText(), t0, 'the call timer advances');
  assert.match(await kine.locator('#call-layer .call-timer').innerText(), /^\d\d:\d\d$/);

  // Microphone and camera states reach the other side.
  await patient.getByRole('button', { name: 'Couper le micro' }).click();
  await kine.locator('#call-layer .call-remote-mic').getByText('Micro coupé').waitFor({ timeout: 5_000 });
  await patient.getByRole('button', { name: 'Couper la caméra' }).click();
  await kine.locator('#call-layer .call-camoff').getByText('Caméra coupée').waitFor({ timeout: 5_000 });
  await shot(kine, 'dashboard-09-patient-muted');
  await patient.getByRole('button', { name: 'Rallumer le micro' }).click();
  await patient.getByRole('button', { name: 'Rallumer la caméra' }).click();
  await kine.locator('#call-layer .call-remote-mic').waitFor({ state: 'hidden', timeout: 5_000 });
  await kine.locator('#call-layer .call-camoff').waitFor({ state: 'hidden', timeout: 5_000 });
  await kine.locator('#call-layer').getByRole('button', { name: 'Couper le micro' }).click();
  await patient.locator('.call-remote-mic').getByText('Micro coupé').waitFor({ timeout: 5_000 });
  await shot(patient, 'patient-11-kine-muted');
  await kine.locator('#call-layer').getByRole('button', { name: 'Rallumer le micro' }).click();
  await patient.locator('.call-remote-mic').waitFor({ state: 'hidden', timeout: 5_000 });

  // Camera switch: the phone has two cameras; the kiné keeps receiving frames from the other one.
  const senderCamera = () =>
    patient.evaluate(() => {
      for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
        if (pc.connectionState !== 'connected') continue;
        const s = pc.getSenders().find((x) => x.track?.kind === 'video' && x.track.readyState === 'live');
        if (s?.track) return s.track.getSettings().deviceId ?? s.track.label;
      }
      return null;
    });
  const before = await senderCamera();
  assert.ok(before, 'the patient sends a camera');
  const flip = patient.getByRole('button', { name: 'Changer de caméra' });
  await flip.waitFor();
  // Twice: past the fake depth camera to the colour one (see the launch above).
  await flip.click();
  await patient.waitForFunction(() => !document.querySelector('.ctl-switch')?.hasAttribute('disabled'));
  await flip.click();
  await patient.waitForFunction(() => !document.querySelector('.ctl-switch')?.hasAttribute('disabled'));
  await patient.waitForFunction((b) => {
    for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
      const s = pc.getSenders().find((x) => x.track?.kind === 'video' && x.track.readyState === 'live');
      if (s?.track && (s.track.getSettings().deviceId ?? s.track.label) !== b) return true;
    }
    return false;
  }, before, { timeout: 10_000 });
  assert.notEqual(await senderCamera(), before, 'the other camera is sent');
  await waitFramesRise(kine, 'kiné after the camera switch');
  await assertFramesRise(kine, 'kiné after the camera switch');

  // Chat, both ways; first the unread badge and the announcement while the panel is closed.
  const toPatient = 'Bonjour ! La vidéo des exercices : https://example.org/gainage-42';
  const toKine = 'Merci, bien reçu-17';
  await kine.locator('#call-layer').getByRole('button', { name: 'Messages' }).click();
  await kine.locator('#call-layer').getByLabel('Votre message').fill(toPatient);
  await kine.locator('#call-layer').getByLabel('Votre message').press('Enter');
  await kine.locator('#call-layer .chat-me').getByText(/gainage-42/).waitFor();
  await patient.locator('.chat-badge').getByText('1').waitFor({ timeout: 5_000 });
  assert.equal(await patient.locator('.ctl-chat').getAttribute('aria-label'), 'Messages, 1 non lus');
  assert.match(await patient.locator('.call [aria-live="polite"].visually-hidden').innerText(), /Nouveau message : .*gainage-42/);
  await shot(patient, 'patient-12-chat-unread');
  await patient.locator('.ctl-chat').click();
  const received = patient.locator('.chat-them').filter({ hasText: 'gainage-42' });
  await received.waitFor();
  assert.equal(await received.getByRole('link').getAttribute('href'), 'https://example.org/gainage-42', 'the link is clickable');
  await patient.locator('.chat-badge').waitFor({ state: 'hidden' });
  await patient.getByLabel('Votre message').fill(toKine);
  await patient.getByRole('button', { name: 'Envoyer' }).click();
  await kine.locator('#call-layer .chat-them').getByText(toKine).waitFor({ timeout: 5_000 });
  await checkAxe(patient, 'patient call with the chat open');
  await shot(patient, 'patient-13-chat');
  await shot(kine, 'dashboard-10-chat');
  for (const [who, frames] of [['kiné', kineFrames], ['patient', patientFrames]]) {
    assert.ok(frames.length > 3, `${who}: signaling frames were recorded (${frames.length})`);
    const leaked = /** @type {string[]} */ (frames).filter((f) => f.includes('gainage-42') || f.includes('bien reçu-17'));
    assert.deepEqual(leaked, [], `${who}: no chat text in any signaling frame`);
  }
  await patient.getByRole('button', { name: 'Fermer les messages' }).click();

  // Screen sharing by the kiné: the patient sees it large, the kiné's camera small.
  await kine.locator('#call-layer').getByRole('button', { name: 'Partager l’écran' }).click();
  await kine.locator('#call-layer .call-sharing').waitFor({ timeout: 10_000 });
  await patient.locator('.call-screen').waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await patient.locator('.call-stage.has-screen').count(), 1, 'the stage shows the screen large');
  const screenFrames = () =>
    patient.evaluate(async () => {
      const v = /** @type {HTMLVideoElement | null} */ (document.querySelector('.call-screen'));
      const track = v?.srcObject instanceof MediaStream ? v.srcObject.getVideoTracks()[0] : null;
      if (!track) return 0;
      for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
        if (!pc.getReceivers().some((r) => r.track === track)) continue;
        let frames = 0;
        (await pc.getStats(track)).forEach((s) => {
          if (s.type === 'inbound-rtp') frames += s.framesDecoded ?? 0;
        });
        return frames;
      }
      return 0;
    });
  await patient.waitForFunction(() => {
    const v = /** @type {HTMLVideoElement | null} */ (document.querySelector('.call-screen'));
    return !!v && v.videoWidth > 0;
  }, null, { timeout: 10_000 });
  const f1 = await screenFrames();
  await patient.waitForTimeout(1_500);
  const f2 = await screenFrames();
  assert.ok(f2 > f1, `the shared screen's frames reach the patient (${f1} -> ${f2})`);
  await assertFramesRise(patient, 'patient while the kiné shares (camera too)');
  await checkAxe(patient, 'patient seeing a shared screen');
  await shot(patient, 'patient-14-screen-shared');
  await shot(kine, 'dashboard-11-sharing');
  // A click event rather than a mouse click: while headless Chromium captures, its input acks can
  // lag on a loaded machine (stopping needs no gesture).
  await kine.locator('#call-layer').getByRole('button', { name: 'Arrêter le partage' }).dispatchEvent('click');
  await patient.locator('.call-screen').waitFor({ state: 'hidden', timeout: 10_000 });
  await kine.locator('#call-layer .call-sharing').waitFor({ state: 'hidden' });

  // The kiné's network goes: the patient's own indicator does not say "weak"; the kiné's side does.
  await kineCtx.setOffline(true);
  await kine.evaluate(() => {
    for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) pc.close();
  });
  await kine.locator('#call-layer .call-banner').waitFor({ state: 'visible', timeout: 10_000 });
  const peerNet = patient.locator('.call-peer-net');
  await peerNet.waitFor({ state: 'visible', timeout: 15_000 });
  assert.match(await peerNet.innerText(), /l’autre personne/);
  assert.doesNotMatch(await patient.locator('.call-quality-text').innerText(), /faible/, 'the patient is not told that their own network is weak');
  await shot(patient, 'patient-15-kine-network');
  await kineCtx.setOffline(false);
  await kine.locator('#call-layer .call-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await Promise.all([waitConnected(patient, 30_000), waitConnected(kine, 30_000)]);
  await assertFramesRise(patient, 'patient after the kiné is back');
  await peerNet.waitFor({ state: 'hidden', timeout: 15_000 });

  await kineEnds(kine);
  await screen(patient, 'ended');
  patientWatch.check();
  kineWatch.check();
  await patientCtx.close();
  await kineCtx.close();
});
