// j) Every screen plain and robust:
// j1 layouts at 200 % text and at 200 % page zoom (the phone, 390x844, and the dashboard,
//    1366x768): nothing is cut sideways, the call's buttons stay on screen, the device check's
//    join button is above the fold; axe stays clean;
// j2 the right words for each device failure: no device at all (this machine really has none),
//    blocked (permission really refused), in use by another app (NotReadableError, which no fake
//    device can produce: the page's getUserMedia is made to throw it);
// j3 a new link pasted into a tab already on /j takes effect;
// j4 field-level errors on a dashboard form, named by the server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, kineApi, kineJoins, launch, loginDashboard, newContext, overflow, screen, server, shot } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** @param {import('playwright-core').Page} page */
const bigText = (page) => page.evaluate(() => (document.documentElement.style.fontSize = '200%'));

/** @param {import('playwright-core').Page} page @param {string} name */
async function noOverflow(page, name) {
  assert.deepEqual(await overflow(page), [], `${name}: nothing cut sideways`);
}

/** The call's controls are all on screen (the controls bar may scroll inside itself). @param {import('playwright-core').Page} page @param {string} name */
async function controlsOnScreen(page, name) {
  const r = await page.evaluate(() => {
    const bar = document.querySelector('.call-controls');
    const b = bar?.getBoundingClientRect();
    return b ? { top: b.top, bottom: b.bottom, h: window.innerHeight } : null;
  });
  assert.ok(r && r.top >= 0 && r.bottom <= r.h + 1, `${name}: the call buttons stay on screen (${JSON.stringify(r)})`);
}

test('j1) phone and dashboard at 200 % text and 200 % zoom', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Grand-Texte', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);
  // A kiné in the room, so that the patient's phone reaches the call screen.
  const roomCtx = await newContext(browser, 'kine');
  const roomKine = await roomCtx.newPage();
  await loginDashboard(roomKine);
  await kineJoins(roomKine, session.id);

  // The device check at 100 %: the join button is above the fold on the phone.
  const plain = await newContext(browser, 'patient');
  const pp = await plain.newPage();
  await pp.goto(link.url);
  await screen(pp, 'intro');
  await pp.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await screen(pp, 'devices');
  const join = await pp.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).boundingBox();
  assert.ok(join && join.y + join.height <= 844, `the join button is above the fold (${JSON.stringify(join)})`);
  await plain.close();

  for (const mode of ['text', 'zoom']) {
    // 200 % zoom is a CSS viewport half as wide and high, at twice the pixel density.
    const ctx = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: mode === 'zoom' ? { width: 195, height: 422 } : { width: 390, height: 844 },
      deviceScaleFactor: mode === 'zoom' ? 2 : 1,
      locale: 'fr-FR',
      timezoneId: 'Europe/Paris',
      permissions: ['camera', 'microphone'],
    });
    await ctx.addInitScript(() => {
      const w = /** @type {any} */ (window);
      w.__pcs = [];
      const Native = window.RTCPeerConnection;
      const Wrapped = function (/** @type {any} */ cfg) {
        const pc = new Native(cfg);
        w.__pcs.push(pc);
        return pc;
      };
      Wrapped.prototype = Native.prototype;
      window.RTCPeerConnection = /** @type {any} */ (Wrapped);
    });
    const page = await ctx.newPage();
    await page.goto(link.url);
    await screen(page, 'intro');
    if (mode === 'text') await bigText(page);
    await noOverflow(page, `intro ${mode}`);
    await shot(page, `patient-20-intro-${mode}200`);
    await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
    await screen(page, 'devices');
    await noOverflow(page, `devices ${mode}`);
    await shot(page, `patient-21-devices-${mode}200`);
    await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
    await screen(page, 'call');
    await noOverflow(page, `call ${mode}`);
    await controlsOnScreen(page, `call ${mode}`);
    await checkAxe(page, `call ${mode} 200 %`);
    await shot(page, `patient-22-call-${mode}200`);
    await page.locator('.ctl-chat').click();
    await noOverflow(page, `chat ${mode}`);
    await controlsOnScreen(page, `chat ${mode}`);
    await shot(page, `patient-23-chat-${mode}200`);
    await page.locator('.ctl-chat').click();
    await page.locator('.ctl-hangup').click();
    await page.locator('dialog.confirm[open]').waitFor();
    await noOverflow(page, `hang-up confirmation ${mode}`);
    // At 200 % the dialog may scroll inside itself: its answer must be reachable there.
    await page.locator('dialog.confirm [data-answer="yes"]').scrollIntoViewIfNeeded();
    const yes = await page.locator('dialog.confirm [data-answer="yes"]').boundingBox();
    assert.ok(yes && yes.y >= 0 && yes.y + yes.height <= (mode === 'zoom' ? 422 : 844) + 1, 'the confirmation fits');
    await shot(page, `patient-24-confirm-${mode}200`);
    await page.locator('dialog.confirm [data-answer="yes"]').click();
    await screen(page, 'left');
    await noOverflow(page, `left ${mode}`);
    // The way back is on screen without scrolling (a patient who hung up by mistake sees it at once).
    const back = await page.getByRole('button', { name: 'Revenir dans la séance' }).boundingBox();
    assert.ok(back && back.y >= 0 && back.y + back.height <= (mode === 'zoom' ? 422 : 844) + 1, `"Revenir dans la séance" above the fold (${JSON.stringify(back)})`);
    await shot(page, `patient-25-left-${mode}200`);
    await ctx.close();
  }

  await roomKine.locator('#call-layer').getByRole('button', { name: 'Quitter la salle' }).click();
  await roomCtx.close();

  // The dashboard: 1366x768, then the same at 200 % text and at 200 % zoom (683x384).
  for (const mode of ['plain', 'text', 'zoom']) {
    const ctx = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: mode === 'zoom' ? { width: 683, height: 384 } : { width: 1366, height: 768 },
      deviceScaleFactor: mode === 'zoom' ? 2 : 1,
      locale: 'fr-FR',
      timezoneId: 'Europe/Paris',
      permissions: ['camera', 'microphone'],
    });
    const kine = await ctx.newPage();
    await loginDashboard(kine);
    if (mode === 'text') await bigText(kine);
    await noOverflow(kine, `dashboard ${mode}`);
    const bar = await kine.locator('.topbar').boundingBox();
    assert.ok(bar && bar.x >= 0 && bar.x + bar.width <= (mode === 'zoom' ? 683 : 1366) + 1, `the top bar is whole (${JSON.stringify(bar)})`);
    await checkAxe(kine, `dashboard ${mode}`);
    await shot(kine, `dashboard-20-sessions-${mode}`);
    await kineJoins(kine, session.id);
    if (mode === 'text') await bigText(kine);
    await noOverflow(kine, `kiné call ${mode}`);
    await controlsOnScreen(kine, `kiné call ${mode}`);
    await shot(kine, `dashboard-21-call-${mode}`);
    await kine.locator('#call-layer .ctl-hangup').click();
    await kine.locator('dialog.confirm[open]').waitFor();
    await noOverflow(kine, `end confirmation ${mode}`);
    await shot(kine, `dashboard-22-end-confirm-${mode}`);
    await kine.locator('dialog.confirm [data-answer="no"]').click();
    await kine.locator('#call-layer').getByRole('button', { name: 'Quitter la salle' }).click();
    await kine.locator('#call-layer').waitFor({ state: 'hidden' });
    await ctx.close();
  }
});

test('j2) no device, blocked, in use by another app: each its own words', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Sans-Caméra', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });

  /** @param {import('playwright-core').Browser} b @param {string[]} perms @param {string | null} throwName */
  const attempt = async (b, perms, throwName) => {
    const link = await api.link(session.id);
    const ctx = await b.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, locale: 'fr-FR', permissions: perms });
    if (throwName) {
      await ctx.addInitScript((name) => {
        navigator.mediaDevices.getUserMedia = async () => {
          throw new DOMException('Could not start video source', name);
        };
      }, throwName);
    }
    const page = await ctx.newPage();
    await page.goto(link.url);
    await screen(page, 'intro');
    await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
    return { ctx, page };
  };

  // This machine has no camera and no microphone: Chromium without fake devices finds none.
  const bare = await launch({ fakeDevices: false });
  let { ctx, page } = await attempt(bare, ['camera', 'microphone'], null);
  await screen(page, 'device-nodevice');
  await page.getByRole('heading', { name: 'Aucun micro ni caméra trouvé' }).waitFor();
  assert.equal(await page.getByText(/cadenas/).count(), 0, 'no talk of a padlock when nothing is blocked');
  await checkAxe(page, 'no device');
  await shot(page, 'patient-26-no-device');
  await ctx.close();
  await bare.close();

  // Blocked: the permission is refused (no fake UI to accept it, none granted).
  const strict = await launch({ fakeUi: false });
  ({ ctx, page } = await attempt(strict, [], null));
  await screen(page, 'device-denied');
  await page.getByText(/cadenas/).waitFor();
  await shot(page, 'patient-27-blocked');
  await ctx.close();
  await strict.close();

  // In use by another app.
  ({ ctx, page } = await attempt(browser, ['camera', 'microphone'], 'NotReadableError'));
  await screen(page, 'device-busy');
  await page.getByText(/WhatsApp, Zoom/).waitFor();
  await shot(page, 'patient-28-busy');
  await ctx.close();
});

test('j3) a new link pasted into an open /j tab takes effect; the waiting words fit any kiné', async () => {
  const api = await kineApi();
  const a = await api.patient({ name: 'Mme Premier-Lien', consent: true });
  const b = await api.patient({ name: 'Mme Second-Lien', consent: true });
  const sa = await api.session(a.id);
  const sb = await api.session(b.id, { startsAt: new Date(Date.now() + 7 * 60_000) });
  const la = await api.link(sa.id);
  const lb = await api.link(sb.id);
  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  await page.goto(la.url);
  await screen(page, 'intro');
  const whenA = await page.locator('.session-when').innerText();
  // Pasting a link that differs only after '#' is a same-document navigation.
  await page.evaluate((hash) => {
    location.hash = hash;
  }, new URL(lb.url).hash);
  await page.waitForFunction((w) => {
    const el = document.querySelector('[data-screen="intro"] .session-when');
    return !!el && el.textContent !== w;
  }, whenA, { timeout: 15_000 });
  // The new session is the one joined: its waiting room says so without assuming a gender.
  await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
  await screen(page, 'waiting');
  const words = await page.locator('[data-screen="waiting"]').innerText();
  assert.doesNotMatch(words, /\bil va\b|\barrivé(?!e)|\belle va\b/, `neutral waiting words: ${words}`);
  await shot(page, 'patient-29-waiting-neutral');
  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kine.goto(`${server().url}/app#/sessions`);
  await kine.locator(`tr[data-session="${sb.id}"] .waiting-badge`).waitFor({ timeout: 10_000 });
  assert.equal(await kine.locator(`tr[data-session="${sa.id}"] .waiting-badge`).count(), 0, 'the first link is no longer used');
  await ctx.close();
  await kineCtx.close();
});

test('j4) a dashboard form error names its field', async () => {
  const ctx = await newContext(browser, 'kine');
  const kine = await ctx.newPage();
  await loginDashboard(kine);
  await kine.getByRole('link', { name: 'Patients' }).click();
  await kine.getByRole('heading', { name: 'Nouveau patient' }).waitFor();
  await kine.getByLabel('Nom affiché').fill('Mme Futur');
  // A birth date in the future: the server refuses and names birth_date.
  await kine.getByLabel('Date de naissance').fill('2099-01-01');
  await kine.getByRole('button', { name: 'Créer le patient' }).click();
  const birth = kine.getByLabel('Date de naissance');
  await kine.waitForFunction(() => {
    const input = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="birth_date"]'));
    return !!input && input.getAttribute('aria-invalid') === 'true';
  }, null, { timeout: 10_000 });
  const describedBy = await birth.getAttribute('aria-describedby');
  assert.ok(describedBy, 'the field points at its error');
  const error = await kine.locator(`[id="${describedBy?.split(' ')[0]}"]`).innerText();
  assert.ok(error.trim().length > 0 && !/^Donnée invalide\.?$/.test(error.trim()), `a field-level error, not just "Donnée invalide" (${error})`);
  await shot(kine, 'dashboard-23-field-error');
  await ctx.close();
});

test('j5) an INS refused by the server is shown under the field it is about', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Identité', birth: '1984-12-03' });
  const ctx = await newContext(browser, 'kine');
  const kine = await ctx.newPage();
  await loginDashboard(kine);
  await kine.goto(`${server().url}/app#/patients/${p.id}`);
  const ins = kine.locator('section[aria-labelledby="ins-h"]');
  await ins.waitFor({ timeout: 10_000 });
  await ins.getByLabel('Statut de l’identité').selectOption('qualifiee');
  // A NIR whose key is wrong (the right one is 55).
  await ins.getByLabel('Matricule INS (NIR ou NIA, 15 caractères)').fill('184127505612354');
  await ins.getByLabel('Nom(s) de naissance', { exact: true }).fill('DUPONT');
  await ins.getByLabel('Prénom(s) de naissance').fill('JEAN');
  await ins.getByLabel('Sexe').selectOption('M');
  await ins.getByLabel('Lieu de naissance (code INSEE)').fill('75056');
  await ins.getByRole('button', { name: 'Enregistrer l’identité' }).click();
  const matricule = ins.locator('input[name="matricule"]');
  await kine.waitForFunction(() => document.querySelector('section[aria-labelledby="ins-h"] input[name="matricule"]')?.getAttribute('aria-invalid') === 'true', null, { timeout: 10_000 });
  const error = ins.locator('.field-error[data-for="matricule"]');
  assert.equal(await error.getAttribute('data-code'), 'ins_key', 'the refusal code rides on the message');
  assert.ok((await error.innerText()).trim().length > 0, 'a message in words under the matricule');
  assert.ok((await matricule.getAttribute('aria-describedby'))?.includes(/** @type {string} */ (await error.getAttribute('id'))), 'the field points at its error');
  assert.equal(await kine.evaluate(() => document.activeElement?.getAttribute('name')), 'matricule', 'focus moves to the field');
  await shot(kine, 'dashboard-24-ins-field-error');
  await ctx.close();
});
