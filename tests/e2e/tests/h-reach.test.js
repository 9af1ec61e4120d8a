// h) The short link (/j#CODE) opened on a phone before the room opens: the page says when the
// session is (Paris time), lets the patient try the camera and sound now, and turns into the join
// screen by itself when the window opens, without a reload.

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

test('h) short link before the window: when, device test, then the join screen by itself', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Avance', consent: true });
  const acts = await api.get('/api/acts');
  // The window opens 15 minutes before the start (the demo's default): in about 20 seconds.
  const startsAt = new Date(Date.now() + 15 * 60_000 + 20_000);
  const session = await api.post('/api/sessions', { patient: p.id, starts_at: startsAt.toISOString(), act_code: acts[0].code, auto_admit: true, patient_consent_on_join: true });
  const link = await api.post(`/api/sessions/${session.id}/links`, { role: 'patient' });
  const short = String(link.short_url).replace('127.0.0.1', 'localhost');
  assert.match(short, /\/j#[A-Za-z0-9_-]{22}$/, short);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(short);
  await screen(page, 'before');
  assert.equal(new URL(page.url()).hash, '', 'the code is taken out of the address bar');
  const hour = new Intl.DateTimeFormat('fr-FR', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' }).format(startsAt);
  const title = await page.getByRole('heading', { level: 1 }).innerText();
  assert.ok(title.includes(hour) && title.startsWith('Votre séance est prévue le'), title);
  await page.getByText('Heure de Paris.').waitFor();
  await page.getByText(/La salle ouvre dans/).waitFor();
  // Test the camera and sound now.
  await page.getByRole('button', { name: 'Essayer ma caméra et mon son maintenant' }).click();
  await page.waitForFunction(() => {
    const v = /** @type {HTMLVideoElement | null} */ (document.querySelector('[data-screen="before"] video'));
    return !!v && v.videoWidth > 0;
  });
  await checkAxe(page, 'patient before the window');
  await shot(page, 'patient-20-before-window');
  await page.getByRole('button', { name: 'Arrêter l’essai' }).click();
  // No reload: the same document turns into the join screen when the window opens.
  await page.evaluate(() => {
    /** @type {any} */ (window).__sameDocument = true;
  });
  await screen(page, 'intro', 60_000);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__sameDocument), true, 'no reload');
  await page.getByText(/Séance à distance avec/).waitFor();
  await shot(page, 'patient-21-window-open');
  watch.check();
  await ctx.close();
});
