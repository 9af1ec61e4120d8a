// The time from the patient's last "join" click (after consent) to the first remote video frame,
// on loopback with fake devices; the kiné is already in the call and the session auto-admits.
// Printed, not asserted: budgets are checked by benchmarks, never by timed tests (DESIGN.md).

import { after, before, test } from 'node:test';
import { joinToFirstFrame, kineApi, kineJoins, launch, loginDashboard, newContext, screen, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('timing: join click (after consent) to first remote frame', async () => {
  const api = await kineApi();
  const runs = Number(process.env.E2E_TIMING_RUNS ?? 3);
  /** @type {number[]} */
  const times = [];
  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  for (let i = 0; i < runs; i++) {
    const p = await api.patient({ name: `Mme Chrono ${i}` });
    const session = await api.session(p.id, { autoAdmit: true });
    const link = await api.link(session.id);
    await kineJoins(kine, session.id);
    const ctx = await newContext(browser, 'patient');
    const page = await ctx.newPage();
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
    await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
    await screen(page, 'consent');
    await page.getByLabel('J’ai lu ce texte et je suis d’accord.').check();
    await page.getByRole('button', { name: /Je suis d’accord/ }).click();
    times.push(await joinToFirstFrame(page));
    await kineEnds(kine);
    await kine.getByText(/Durée facturable/).waitFor();
    await kine.getByRole('button', { name: 'Retour aux séances' }).click();
    await ctx.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(`JOIN_TO_FIRST_FRAME_MS runs=${times.map((t) => t.toFixed(0)).join(',')} median=${median.toFixed(0)} (budget 500)`);
  await kineCtx.close();
});
