// d) A platform page on another origin embeds <telesoin-call> and receives its reports (admitted,
// connected, ended with billable seconds) as DOM events and as postMessage from the frame.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { kineApi, launch, loginDashboard, newContext, server, shot, waitConnected, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('node:http').Server} */
let host;

before(async () => {
  browser = await launch();
  const s = server();
  assert.ok(s.hostPort > 0, 'E2E_HOST_PORT is set (run.sh allowlists it for embedding)');
  // The platform's page: its own origin, its own scripts.
  const html = `<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Plateforme partenaire</title>
<style>telesoin-call{display:block;width:380px;height:640px}</style></head>
<body><h1>Plateforme partenaire</h1><main id="slot"></main>
<script>
window.__dom = []; window.__msg = [];
window.addEventListener('message', (e) => { if (e.data && e.data.source === 'telesoin') window.__msg.push({origin: e.origin, event: e.data.event, data: e.data}); });
window.mount = (token) => {
  const el = document.createElement('telesoin-call');
  for (const n of ['ready','waiting','admitted','connected','reconnecting','ended','refused']) el.addEventListener(n, (e) => window.__dom.push({event: n, detail: e.detail}));
  el.setAttribute('token', token);
  document.getElementById('slot').append(el);
};
</script>
<script src="${s.url}/embed.js"></script></body></html>`;
  host = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => host.listen(s.hostPort, '127.0.0.1', () => resolve(undefined)));
});
after(async () => {
  await browser?.close();
  host?.close();
});

test('d) embedded call on another origin reports admitted and ended', async () => {
  const s = server();
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Intégrée', consent: true });
  const session = await api.session(p.id);
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);

  const ctx = await newContext(browser, 'host');
  const page = await ctx.newPage();
  /** @type {string[]} */
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  await page.goto(`http://localhost:${s.hostPort}/`);
  assert.equal(await page.evaluate(() => !!customElements.get('telesoin-call')), true, `embed.js loaded on the host page (console: ${consoleErrors.join(' | ')})`);
  await page.evaluate((token) => /** @type {any} */ (window).mount(token), link.token);
  await page
    .waitForFunction(() => /** @type {any} */ (window).__dom.some((/** @type {any} */ e) => e.event === 'ready'), null, { timeout: 15_000 })
    .catch((e) => {
      throw new Error(`no 'ready' from the frame (console: ${consoleErrors.join(' | ')}): ${e.message}`);
    });

  // Walk the patient flow inside the frame.
  const embed = page.frames().find((f) => f.url().startsWith(`${s.url}/embed/`));
  assert.ok(embed, 'the frame is the server\'s /embed/ page');
  await embed.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await embed.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
  await embed.locator('[data-screen="waiting"]').waitFor({ timeout: 15_000 });

  // The kiné admits from the dashboard.
  await kine.locator('#announce .announce-item').getByRole('button', { name: 'Faire entrer' }).click({ timeout: 15_000 });
  await waitConnected(kine);
  await page.waitForFunction(() => /** @type {any} */ (window).__dom.some((/** @type {any} */ e) => e.event === 'connected'), null, { timeout: 20_000 });
  await shot(page, 'embed-01-call');
  await api.billableAtLeast(session.id, 2);
  await kineEnds(kine);
  await page.waitForFunction(() => /** @type {any} */ (window).__dom.some((/** @type {any} */ e) => e.event === 'ended'), null, { timeout: 15_000 });

  /** @type {{dom: {event: string, detail: any}[], msg: {origin: string, event: string, data: any}[]}} */
  const seen = await page.evaluate(() => ({ dom: /** @type {any} */ (window).__dom, msg: /** @type {any} */ (window).__msg }));
  const domEvents = seen.dom.map((e) => e.event);
  for (const e of ['ready', 'waiting', 'admitted', 'connected', 'ended']) assert.ok(domEvents.includes(e), `DOM event ${e} (got ${domEvents.join(', ')})`);
  const ended = seen.dom.find((e) => e.event === 'ended');
  assert.ok(typeof ended?.detail.billable_seconds === 'number' && ended.detail.billable_seconds > 0, `ended carries billable seconds: ${JSON.stringify(ended?.detail)}`);
  assert.ok(seen.msg.length > 0 && seen.msg.every((m) => m.origin === s.url), 'postMessage reports come from the server origin');
  assert.ok(seen.msg.some((m) => m.event === 'admitted') && seen.msg.some((m) => m.event === 'ended'), 'admitted and ended by postMessage');
  await shot(page, 'embed-02-ended');
  await ctx.close();
  await kineCtx.close();
});

test('d) a page on an origin outside the allowlist gets no report', async () => {
  const s = server();
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Ailleurs', consent: true });
  const session = await api.session(p.id);
  const link = await api.link(session.id);
  const ctx = await newContext(browser, 'host');
  const page = await ctx.newPage();
  // Same page, other origin (127.0.0.1 is not localhost for the browser).
  await page.goto(`http://127.0.0.1:${s.hostPort}/`);
  assert.equal(await page.evaluate(() => !!customElements.get('telesoin-call')), true, 'embed.js itself loads anywhere');
  await page.evaluate((token) => /** @type {any} */ (window).mount(token), link.token);
  await page.waitForTimeout(3_000);
  const seen = await page.evaluate(() => ({ dom: /** @type {any} */ (window).__dom.length, msg: /** @type {any} */ (window).__msg.length }));
  assert.deepEqual(seen, { dom: 0, msg: 0 }, 'nothing reaches a page outside the allowlist');
  await ctx.close();
});
