// a) The kiné logs in, records a patient and an in-person visit, schedules a session and copies the
// link; the patient opens it on a phone, consents and waits; the kiné sees the arrival (on screen,
// in the title) and admits; both reach 'connected' and decode frames; the patient's call controls
// work with the keyboard alone and the patient hangs up; the kiné ends and sees a billable duration.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, checkAxe, daysAgo, kineApi, launch, loginDashboard, newContext, patientToJoin, screen, server, shot, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a) schedule, copy the link, consent, admit, call, hang up, billable duration', async () => {
  const s = server();
  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const kineWatch = watchPage(kine);

  // Login page.
  await kine.goto(`${s.url}/app`);
  await kine.getByRole('heading', { name: 'Connexion' }).waitFor();
  await checkAxe(kine, 'login');
  await shot(kine, 'dashboard-01-login');
  await loginDashboard(kine);

  // A new patient, with an in-person bilan and a prescription.
  await kine.getByRole('link', { name: 'Patients' }).click();
  await kine.getByRole('heading', { name: 'Nouveau patient' }).waitFor();
  const name = `Mme Dupont ${Date.now() % 100000}`;
  await kine.getByLabel('Nom affiché').fill(name);
  await kine.getByLabel('Date de naissance').fill('1957-03-14');
  await kine.getByLabel('Médecin traitant').fill('Dr Martin, Guéret');
  await kine.getByRole('button', { name: 'Créer le patient' }).click();
  await kine.getByRole('heading', { name }).waitFor();
  await kine.getByLabel('Date de la séance au cabinet').fill(daysAgo(20));
  await kine.getByRole('button', { name: 'Ajouter la séance au cabinet' }).click();
  await kine.getByText('Bilan', { exact: false }).first().waitFor();
  await kine.getByLabel('Date de la prescription').fill(daysAgo(25));
  await kine.getByRole('button', { name: 'Ajouter la prescription' }).click();
  await kine.getByText(/Prescription du/).waitFor();
  await checkAxe(kine, 'patient file');
  await shot(kine, 'dashboard-02-patient');

  // Schedule now, then copy the link.
  await kine.getByRole('link', { name: 'Programmer une séance' }).click();
  await kine.getByRole('heading', { name: 'Programmer une séance' }).waitFor();
  // The current minute in the browser's time zone (Europe/Paris), not the test runner's: around
  // midnight the two days differ and the session would land on another day of the dashboard.
  const [day, time] = await kine.evaluate(() => {
    const now = new Date();
    const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
    return [`${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`, `${p(now.getHours())}:${p(now.getMinutes())}`];
  });
  await kine.getByLabel('Heure').fill(time);
  await kine.getByLabel('Date', { exact: true }).fill(day);
  await checkAxe(kine, 'schedule');
  await kine.getByRole('button', { name: 'Programmer', exact: true }).click();
  await kine.getByRole('heading', { name: /Lien de connexion pour/ }).waitFor();
  await kine.getByRole('button', { name: 'Copier le lien' }).click();
  await kine.getByText('Lien copié.').waitFor();
  const copied = await kine.evaluate(() => navigator.clipboard.readText());
  assert.match(copied, /^https:\/\/[^/]+\/j#.+/, 'the copied link carries the token in the fragment');
  const mail = await kine.getByRole('link', { name: 'Préparer un e-mail' }).getAttribute('href');
  assert.ok(mail?.startsWith('mailto:') && mail.includes(encodeURIComponent('/j#')), 'the prepared e-mail carries the link');
  await shot(kine, 'dashboard-03-link');
  await kine.getByRole('link', { name: 'Séances', exact: true }).click();

  // The patient, on a phone.
  const patientCtx = await newContext(browser, 'patient');
  const patient = await patientCtx.newPage();
  const patientWatch = watchPage(patient);
  const url = copied.replace('127.0.0.1', 'localhost');
  await patientToJoin(patient, url, async (step) => {
    if (step === 'intro') {
      assert.equal(new URL(patient.url()).hash, '', 'the token is taken out of the address bar');
      await patient.getByText(/Remboursée par l’Assurance Maladie/).waitFor();
    }
    await checkAxe(patient, `patient ${step}`);
    await shot(patient, `patient-01-${step}`);
  });
  await screen(patient, 'consent');
  await checkAxe(patient, 'patient consent');
  await shot(patient, 'patient-02-consent');
  // Submitting without ticking says why.
  await patient.getByRole('button', { name: /Je suis d’accord/ }).click();
  await patient.getByText('Cochez la case pour donner votre accord.').waitFor();
  await patient.getByLabel('J’ai lu ce texte et je suis d’accord.').check();
  await patient.getByRole('button', { name: /Je suis d’accord/ }).click();
  await screen(patient, 'waiting');
  await patient.getByText(/va vous faire entrer|n’est pas encore là/).first().waitFor();
  await checkAxe(patient, 'patient waiting');
  await shot(patient, 'patient-03-waiting');

  // The kiné sees the arrival: announcement, row badge and document title.
  const announce = kine.locator('#announce .announce-item');
  await announce.waitFor({ timeout: 10_000 });
  await kine.waitForFunction(() => document.title.startsWith('(1)'));
  await checkAxe(kine, 'dashboard with a waiting patient');
  await shot(kine, 'dashboard-04-waiting');
  await announce.getByRole('button', { name: 'Faire entrer' }).click();

  await Promise.all([waitConnected(patient), waitConnected(kine)]);
  await assertFramesRise(patient, 'patient');
  await assertFramesRise(kine, 'kiné');
  await screen(patient, 'call');
  await checkAxe(patient, 'patient call');
  await shot(patient, 'patient-04-call');
  await shot(kine, 'dashboard-05-call');

  // Keyboard alone: Tab to the microphone, Enter; Space on the camera; then hang up with Enter.
  const micOff = await tabTo(patient, 'ctl-mic');
  await patient.keyboard.press('Enter');
  await patient.getByRole('button', { name: 'Rallumer le micro' }).waitFor();
  assert.equal(await patient.evaluate(() => /** @type {any} */ (window).__pcs[0].getSenders().find((/** @type {RTCRtpSender} */ s) => s.track?.kind === 'audio').track.enabled), false, 'microphone muted');
  await patient.keyboard.press('Enter');
  await patient.getByRole('button', { name: 'Couper le micro' }).waitFor();
  assert.ok(micOff >= 1);
  await patient.keyboard.press('Tab');
  await patient.keyboard.press('Space');
  await patient.getByRole('button', { name: 'Rallumer la caméra' }).waitFor();
  await patient.keyboard.press('Space');
  await patient.getByRole('button', { name: 'Couper la caméra' }).waitFor();
  // Some billable time, as the server records it (both connected, video flowing both ways).
  {
    const api = await kineApi();
    const me = (await api.get('/api/patients')).find((/** @type {any} */ x) => x.display_name === name);
    const session = (await api.get('/api/sessions')).find((/** @type {any} */ x) => x.patient === me.id);
    await api.billableAtLeast(session.id, 2);
  }
  // Messages come between the camera and hanging up.
  await patient.keyboard.press('Tab');
  assert.equal(await patient.evaluate(() => document.activeElement?.classList.contains('ctl-chat')), true, 'messages are next in tab order');
  await patient.keyboard.press('Tab');
  assert.equal(await patient.evaluate(() => document.activeElement?.classList.contains('ctl-hangup')), true, 'hang up is next in tab order');
  await patient.keyboard.press('Enter');
  // Hanging up asks first; the safe answer has the focus, the other one is a Tab away.
  await patient.getByRole('dialog', { name: 'Raccrocher ?' }).waitFor();
  assert.equal(await patient.evaluate(() => document.activeElement?.getAttribute('data-answer')), 'no', 'the safe answer is focused');
  await checkAxe(patient, 'patient hang-up confirmation');
  await shot(patient, 'patient-05a-hangup-confirm');
  await patient.keyboard.press('Tab');
  await patient.keyboard.press('Enter');
  await screen(patient, 'left');
  await patient.getByText(/Durée de la séance/).waitFor();
  await patient.getByRole('button', { name: 'Revenir dans la séance' }).waitFor();
  await checkAxe(patient, 'patient end');
  await shot(patient, 'patient-05-ended');

  // The kiné ends the session and reads the billable duration.
  await kine.getByText(/a quitté l’appel/).waitFor({ timeout: 10_000 });
  await kineEnds(kine);
  await kine.getByText(/Durée facturable/).waitFor();
  await kine.locator('#call-layer').getByRole('button', { name: 'Dossier de séance', exact: true }).click();
  await kine.getByRole('heading', { name: 'Dossier de séance' }).waitFor();
  const billable = Number(await kine.locator('.billable').getAttribute('data-seconds'));
  assert.ok(billable > 0, `billable duration above zero (got ${billable})`);
  await checkAxe(kine, 'session record');
  await shot(kine, 'dashboard-06-record');
  await kine.getByRole('link', { name: 'Retour aux séances' }).click();
  await kine.getByRole('heading', { name: /Séances du/ }).waitFor();
  await checkAxe(kine, 'dashboard');
  await shot(kine, 'dashboard-07-sessions');

  patientWatch.check();
  kineWatch.check();
  await patientCtx.close();
  await kineCtx.close();
});

/**
 * Presses Tab until the element with `cls` has focus.
 * @param {import('playwright-core').Page} page
 * @param {string} cls
 * @returns {Promise<number>} how many presses it took
 */
async function tabTo(page, cls) {
  for (let i = 1; i <= 30; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((c) => document.activeElement?.classList.contains(c) ?? false, cls)) return i;
  }
  throw new Error(`${cls} is not reachable with Tab`);
}
