// m) A patient's link that has joined too often in a short time (a phone reconnecting in a loop):
// the join is refused `rejoin_too_frequent`, and the page says in how many seconds a retry can
// work (the refusal's `details.retry_after_seconds`) with the retry button waiting until then;
// once the time is up, the retry joins. The kiné's seat the same: the call says when the kiné
// can join again, and its button then joins.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, kineApi, kineJoins, launch, loginDashboard, newContext, screen, shot, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The server's default rejoin burst (`rejoin_burst`): joins at once before the refusals. */
const BURST = 10;

/**
 * Joins with `token` BURST times from the page's origin, each socket closed once answered, as a
 * client reconnecting in a loop would; returns the first answer's type of each.
 * @param {import('playwright-core').Page} page @param {string} token
 */
function spendBurst(page, token) {
  return page.evaluate(
    async ({ token, n }) => {
      const once = () =>
        new Promise((resolve) => {
          const ws = new WebSocket(`wss://${location.host}/ws`);
          ws.onopen = () => ws.send(JSON.stringify({ type: 'join', token }));
          ws.onmessage = (m) => {
            const type = JSON.parse(m.data).type;
            ws.onmessage = null;
            ws.onclose = () => resolve(type);
            ws.close();
          };
          ws.onerror = () => resolve('error');
        });
      const seen = [];
      for (let i = 0; i < n; i++) seen.push(await once());
      return seen;
    },
    { token, n: BURST },
  );
}

test('m) joined too often: the refusal counts down to its retry, which then joins', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Boucle', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(link.url);
  await screen(page, 'intro');
  // The link's whole burst, spent from the page's own origin as a reconnecting client would.
  const welcomed = await spendBurst(page, link.token);
  assert.deepEqual(welcomed, Array(BURST).fill('welcome'), 'the burst joins');

  await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
  await screen(page, 'refused');
  assert.match(await page.locator('[data-screen="refused"] .code').innerText(), /rejoin_too_frequent/);
  assert.match(await page.locator('[data-screen="refused"] [role="alert"]').innerText(), /reconnexions/);
  const retry = page.getByRole('button', { name: 'Réessayer' });
  const countdown = page.locator('[data-screen="refused"] [aria-live="polite"]');
  const first = await countdown.innerText();
  const seconds = Number(/dans (\d+) s\./.exec(first)?.[1]);
  // One join every 10 s after the burst (`rejoins_per_minute` 6).
  assert.ok(seconds >= 1 && seconds <= 10, `the seconds left: ${first}`);
  assert.equal(await retry.isDisabled(), true, 'the retry waits');
  await checkAxe(page, 'patient rejoin wait');
  await shot(page, 'patient-m-rejoin-wait');

  await page.getByRole('button', { name: 'Switch to English' }).click();
  assert.match(await countdown.innerText(), /You can try again (in \d+ s|now)\./);
  await page.getByRole('button', { name: 'Passer en français' }).click();

  await page.waitForFunction(() => !document.querySelector('[data-screen="refused"] button.btn-primary')?.hasAttribute('disabled'), null, { timeout: (seconds + 5) * 1000 });
  assert.equal(await countdown.innerText(), 'Vous pouvez réessayer maintenant.');
  await retry.click();
  await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
  // The kiné is not there yet: the join is taken, and the patient waits for them.
  await screen(page, 'waiting');
  watch.check();
  await ctx.close();
});

test("m) the kiné's seat joined too often: the call says when it can join again, then joins", async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Boucle', consent: true });
  const session = await api.session(p.id);
  // Every kiné link of a session is the kiné's one seat: its bucket is the seat's.
  const link = await api.post(`/api/sessions/${session.id}/links`, { role: 'kine' });

  const ctx = await newContext(browser, 'kine');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await loginDashboard(page);
  assert.deepEqual(await spendBurst(page, link.token), Array(BURST).fill('welcome'), 'the burst joins');

  await kineJoins(page, session.id);
  const refusal = page.locator('#call-layer [data-code="rejoin_too_frequent"]');
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /reconnexions/);
  const countdown = page.locator('#call-layer .retry-wait');
  const first = await countdown.innerText();
  const seconds = Number(/^Vous pourrez réessayer dans (\d+) s\.$/.exec(first)?.[1]);
  assert.ok(seconds >= 1 && seconds <= 10, `the seconds left: ${first}`);
  await checkAxe(page, 'kine rejoin wait');
  await shot(page, 'kine-m-rejoin-wait');
  const again = page.locator('#call-layer').getByRole('button', { name: 'Rejoindre l’appel' });
  assert.equal(await again.isDisabled(), true, 'joining again waits');
  await page.waitForFunction(() => document.querySelector('#call-layer .retry-wait')?.textContent === 'Vous pouvez réessayer maintenant.', null, { timeout: (seconds + 5) * 1000 });
  // Once the wait is over, the kiné joins again from the call itself and waits for the patient.
  await again.click();
  await page.locator('#call-layer').getByText('En attente du patient').waitFor();
  assert.equal(await page.locator('#call-layer [data-code]').count(), 0, 'no refusal left');
  watch.check();
  await ctx.close();
});
