// l) An HN session: the price is shown to the patient on the join page before the call and must
// be accepted there (traced, timestamped) before admission; the record and the invoice say when it
// was announced and accepted. A camera turned off during the call is reported as video_out=false
// (its black frames would otherwise keep the far side's video_in true).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, kineApi, kineEnds, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, shot, waitConnected, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('l) HN price shown and accepted on the join page before admission; camera off is no video', async () => {
  const api = await kineApi();
  const stamp = Date.now() % 100000;
  const p = await api.patient({ name: `Mme Roux ${stamp}`, consent: true, prescription: false });
  const session = await api.session(p.id, { autoAdmit: true, hnPriceCents: 3250 });
  assert.equal(session.billing_class, 'hn');
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(link.url);
  await screen(page, 'intro');
  const card = page.locator('.price-card');
  await card.getByText('Prix de la séance : 32,50 €').waitFor();
  await checkAxe(page, 'HN price on the join page');
  await shot(page, 'patient-02-hn-price');
  // Not accepted: the page says so and goes no further.
  await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await page.getByText('Cochez la case pour accepter le prix avant la séance.').waitFor();
  await screen(page, 'intro');
  assert.equal((await api.get(`/api/sessions/${session.id}/record`)).price_accepted_at, undefined, 'nothing traced yet');

  // Accepted on the page (reloaded: nothing was accepted before), then on to the call.
  await patientToJoin(page, link.url, async (step) => {
    if (step === 'intro') await page.getByLabel('J’ai pris connaissance de ce prix et je l’accepte').check();
  });
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await screen(page, 'call');
  const record = await api.billableAtLeast(session.id, 1);
  assert.ok(record.price_accepted_at, `the acceptance is traced: ${JSON.stringify(record)}`);
  assert.ok(Math.abs(Date.parse(record.price_accepted_at) - Date.now()) < 120_000, 'timestamped now');

  // The patient turns the camera off: the page reports video_out=false at once.
  await page.locator('.ctl-cam').click();
  const until = Date.now() + 10_000;
  let off = false;
  while (!off && Date.now() < until) {
    const r = await api.get(`/api/sessions/${session.id}/record`);
    off = r.events.some((/** @type {any} */ e) => e.role === 'patient' && (e.kind === 'media_connected' || e.kind === 'media_heartbeat') && /no_video_out/.test(e.detail ?? ''));
    if (!off) await page.waitForTimeout(250);
  }
  assert.ok(off, 'a camera turned off is reported as video_out=false');

  await kineEnds(kine);
  await screen(page, 'ended');
  const inv = await kine.request.get(`${new URL(link.url).origin}/api/sessions/${session.id}/invoice.pdf`);
  assert.equal(inv.status(), 200);
  assert.equal(inv.headers()['content-type'], 'application/pdf');
  watch.check();
  await ctx.close();
  await kineCtx.close();
});
