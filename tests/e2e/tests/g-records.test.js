// g) After the call. The kiné schedules a session from the dashboard and sees its class and why;
// the patient joins, the kiné admits, both connect; the kiné ends the call, writes the compte
// rendu, amends it and sees both versions (current first); the report PDF is a PDF. An HN session
// scheduled with direct access and a price gets an invoice PDF. The billing page shows the télésoin
// share, downloads the CSV (with the session) and the FHIR Bundle, and saves the settings, with the
// server's refusal shown under the field it names.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SCREENSHOTS, checkAxe, kineApi, launch, loginDashboard, newContext, patientToJoin, screen, server, shot, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Fills the schedule form with the current minute, in the browser's time zone (Europe/Paris). @param {import('playwright-core').Page} page */
async function scheduleNow(page) {
  const [day, time] = await page.evaluate(() => {
    const now = new Date();
    const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
    return [`${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`, `${p(now.getHours())}:${p(now.getMinutes())}`];
  });
  await page.getByLabel('Date', { exact: true }).fill(day);
  await page.getByLabel('Heure').fill(time);
}

test('g) compte rendu with an amendment, report and invoice PDFs, billing page, exports, settings', async () => {
  const s = server();
  const api = await kineApi();
  const stamp = Date.now() % 100000;
  const patient = await api.patient({ name: `M. Leroy ${stamp}`, consent: true });
  const hnPatient = await api.patient({ name: `Mme Garnier ${stamp}`, consent: true, prescription: false });
  assert.deepEqual(await api.get('/api/settings'), { cooperation_protocol: false, hn_price_cents: 0, practice_departement: null }, 'demo settings start empty');

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const kineWatch = watchPage(kine);
  await loginDashboard(kine);

  // An HN session: direct access without a cooperation protocol, with its own price. The class and
  // the reason are shown as soon as it is scheduled.
  await kine.goto(`${s.url}/app#/schedule?patient=${hnPatient.id}`);
  await kine.getByRole('heading', { name: 'Programmer une séance' }).waitFor();
  await scheduleNow(kine);
  await kine.getByLabel('Accès direct (sans ordonnance)').selectOption('ankle_sprain');
  // A price that is not one is refused here, under the field.
  await kine.getByLabel(/Prix si la séance est hors nomenclature/).fill('trente');
  await kine.getByRole('button', { name: 'Programmer', exact: true }).click();
  await kine.getByText('Indiquez un prix en euros, par exemple 30 ou 32,50.').waitFor();
  assert.equal(await kine.getByLabel(/Prix si la séance est hors nomenclature/).getAttribute('aria-invalid'), 'true');
  await kine.getByLabel(/Prix si la séance est hors nomenclature/).fill('32,50');
  await checkAxe(kine, 'schedule with direct access and HN price');
  await kine.getByRole('button', { name: 'Programmer', exact: true }).click();
  await kine.getByRole('heading', { name: /Lien de connexion pour Mme Garnier/ }).waitFor();
  const hnCard = kine.locator('.billing-card');
  await hnCard.getByText('Hors nomenclature').waitFor();
  await hnCard.getByText(/l'accès direct n'est remboursé que dans le cadre d'un protocole de coopération/).waitFor();
  const hnSessions = (await api.get(`/api/sessions`)).filter((/** @type {any} */ x) => x.patient === hnPatient.id);
  assert.equal(hnSessions.length, 1);
  const hnSession = hnSessions[0];
  assert.equal(hnSession.billing_class, 'hn');
  assert.equal(hnSession.billing_reason.code, 'direct_access_without_protocol');

  // The reimbursable session of the call, scheduled from the form.
  await kine.goto(`${s.url}/app#/schedule?patient=${patient.id}`);
  await kine.getByRole('heading', { name: 'Programmer une séance' }).waitFor();
  await scheduleNow(kine);
  await kine.getByRole('button', { name: 'Programmer', exact: true }).click();
  await kine.getByRole('heading', { name: /Lien de connexion pour M\. Leroy/ }).waitFor();
  await kine.locator('.billing-card').getByText('Remboursable', { exact: true }).waitFor();
  await kine.locator('.billing-card').getByText(/Séance remboursable : ordonnance de moins d'un an/).waitFor();
  await shot(kine, 'dashboard-08-scheduled-class');
  const url = (await kine.locator('.link-input').inputValue()).replace('127.0.0.1', 'localhost');
  const session = (await api.get('/api/sessions')).find((/** @type {any} */ x) => x.patient === patient.id);
  assert.ok(session, 'the session is listed');

  // The session list: the class badge, with the reason for screen readers.
  await kine.getByRole('link', { name: 'Séances', exact: true }).click();
  const row = kine.locator(`tr[data-session="${session.id}"]`);
  await row.waitFor();
  assert.equal(await row.locator('[data-class]').textContent(), 'Remboursable');
  assert.match((await row.locator('[data-reason]').textContent()) ?? '', /ordonnance de moins d'un an/);
  assert.match((await kine.locator(`tr[data-session="${hnSession.id}"] .billing`).textContent()) ?? '', /Hors nomenclature — Séance non remboursée/);

  // The call: the patient joins (consent on record), the kiné admits, both connect.
  const patientCtx = await newContext(browser, 'patient');
  const patientPage = await patientCtx.newPage();
  const patientWatch = watchPage(patientPage);
  await patientToJoin(patientPage, url);
  await screen(patientPage, 'waiting');
  const announce = kine.locator('#announce .announce-item');
  await announce.waitFor({ timeout: 10_000 });
  await announce.getByRole('button', { name: 'Faire entrer' }).click();
  await Promise.all([waitConnected(patientPage), waitConnected(kine)]);
  // Some billable time: both connected and video flowing both ways (each side reports video_in
  // once its decoded frames advance, within about 2 s).
  await api.billableAtLeast(session.id, 2);

  // The kiné ends the call and opens the record.
  await kineEnds(kine);
  await kine.locator('#call-layer').getByText(/Durée facturable/).waitFor();
  await screen(patientPage, 'ended');
  await kine.locator('#call-layer').getByRole('button', { name: 'Dossier de séance', exact: true }).click();
  await kine.getByRole('heading', { name: 'Dossier de séance' }).waitFor();
  const billable = Number(await kine.locator('.billable').getAttribute('data-seconds'));
  assert.ok(billable > 0, `billable duration above zero (got ${billable})`);
  await kine.getByText('Aucun incident.').waitFor();
  await kine.locator('.facts').getByText(/Séance remboursable : ordonnance/).waitFor();

  // Compte rendu: write it, then amend it; both versions stay, the current one first.
  const first = 'Rééducation lombaire : exercices de gainage, 3 séries de 10. Bonne tolérance.';
  const amended = 'Rééducation lombaire : exercices de gainage, 3 séries de 10. Bonne tolérance.\nDouleur EVA 3/10 en fin de séance ; reprise de la marche conseillée.';
  await kine.getByText('Pas encore de compte rendu pour cette séance.').waitFor();
  await kine.getByLabel('Compte rendu de la séance').fill(first);
  await kine.getByRole('button', { name: 'Enregistrer le compte rendu' }).click();
  await kine.getByText('Compte rendu enregistré (version 1).').waitFor();
  await kine.getByRole('button', { name: 'Amender le compte rendu' }).click();
  const editor = kine.getByLabel('Nouvelle version du compte rendu');
  assert.equal(await editor.inputValue(), first, 'the amendment starts from the text in force');
  await editor.fill(amended);
  await kine.getByRole('button', { name: 'Enregistrer l’amendement' }).click();
  await kine.getByText('Compte rendu enregistré (version 2).').waitFor();
  const versions = kine.locator('.versions > li');
  assert.equal(await versions.count(), 2, 'two versions shown');
  assert.equal(await versions.nth(0).getAttribute('data-version'), '2', 'the current version first');
  assert.match((await versions.nth(0).textContent()) ?? '', /En vigueur/);
  assert.match((await versions.nth(0).locator('.version-text').textContent()) ?? '', /EVA 3\/10/);
  assert.match((await versions.nth(1).textContent()) ?? '', /Version 1.*Remplacée/);
  assert.equal(await versions.nth(1).locator('.version-text').textContent(), first, 'the first version is kept as written');
  const report = await api.get(`/api/sessions/${session.id}/report`);
  assert.deepEqual(
    report.versions.map((/** @type {any} */ v) => v.version),
    [1, 2],
  );

  // The report PDF, and no invoice for a reimbursable session.
  const reportHref = await kine.locator('a[data-doc="report"]').getAttribute('href');
  assert.equal(reportHref, `/api/sessions/${session.id}/report.pdf`);
  const pdf = await kine.request.get(`${s.url}${reportHref}`);
  assert.equal(pdf.status(), 200);
  assert.match(pdf.headers()['content-type'] ?? '', /^application\/pdf/);
  assert.equal((await pdf.body()).subarray(0, 5).toString('latin1'), '%PDF-');
  assert.equal(await kine.locator('a[data-doc="invoice"]').count(), 0, 'no invoice for a reimbursable session');
  await checkAxe(kine, 'session record with the compte rendu');
  await kine.screenshot({ path: join(SCREENSHOTS, 'dashboard-09-record-report.png'), fullPage: true });

  // The HN session, ended without a call: "non réalisée", so no amount and no invoice.
  await api.post(`/api/sessions/${hnSession.id}/end`);
  await kine.goto(`${s.url}/app#/record/${hnSession.id}`);
  await kine.getByRole('heading', { name: 'Dossier de séance' }).waitFor();
  await kine.locator('[data-outcome="not_held"]').waitFor();
  assert.equal(await kine.locator('a[data-doc="invoice"]').count(), 0, 'no invoice for a session never held');
  const inv = await kine.request.get(`${s.url}/api/sessions/${hnSession.id}/invoice.pdf`);
  assert.equal(inv.status(), 409, 'the server refuses it too');

  // The billing page: share, exports, settings.
  await kine.getByRole('link', { name: 'Facturation' }).click();
  await kine.getByRole('heading', { name: 'Facturation', level: 1 }).waitFor();
  const line = kine.locator('.share-line');
  await line.waitFor();
  const from = await kine.evaluate(() => {
    const now = new Date();
    return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-01`;
  });
  assert.equal(await kine.getByLabel('Du', { exact: true }).inputValue(), from, 'the current month by default');
  const to = await kine.getByLabel('Au', { exact: true }).inputValue();
  const share = await api.get(`/api/share?from=${from}&to=${to}`);
  assert.ok(share.remote_sessions >= 1, 'the session counts');
  const percent = new Intl.NumberFormat('fr-FR', { maximumFractionDigits: 1 }).format(share.ratio * 100);
  const expected = share.over_cap
    ? `Part de télésoin : ${percent} % — au-delà du plafond conventionnel de ${share.cap_percent} %`
    : `Part de télésoin : ${percent} % — dans le plafond conventionnel de ${share.cap_percent} %`;
  assert.equal(await line.textContent(), expected);
  assert.equal(await kine.locator('[data-over-cap]').getAttribute('data-over-cap'), String(share.over_cap));

  const [csv] = await Promise.all([kine.waitForEvent('download'), kine.getByRole('button', { name: 'Télécharger le CSV' }).click()]);
  assert.equal(csv.suggestedFilename(), `telesoin-${from}-${to}.csv`);
  const csvText = await readFile(await csv.path(), 'utf8');
  assert.match(csvText.split('\n')[0], /^date,start,end,billable_seconds/);
  const csvRow = csvText.split('\n').find((l) => l.includes(patient.id));
  assert.ok(csvRow, 'the CSV has a row for the session');
  assert.ok(csvRow.includes(',reimbursable,'), `the row says reimbursable: ${csvRow}`);
  await kine.getByText('Téléchargement lancé.').waitFor();
  const [fhir] = await Promise.all([kine.waitForEvent('download'), kine.getByRole('button', { name: 'Télécharger l’export FHIR (JSON)' }).click()]);
  const bundle = JSON.parse(await readFile(await fhir.path(), 'utf8'));
  assert.equal(bundle.resourceType, 'Bundle');

  // A range the server refuses: its words under the "Au" field.
  await kine.getByLabel('Au', { exact: true }).fill(`${Number(from.slice(0, 4)) - 1}-01-01`);
  await kine.getByRole('button', { name: 'Afficher' }).click();
  const toError = kine.locator('.field-error[data-for="to"]');
  await toError.waitFor();
  assert.equal(await toError.textContent(), 'Au : cette valeur n’est pas acceptée. Vérifiez-la.', 'the field is named in the error');
  await kine.getByLabel('Au', { exact: true }).fill(to);
  await kine.getByRole('button', { name: 'Afficher' }).click();
  await line.waitFor();
  assert.equal(await toError.count(), 0, 'the error goes once the range is right');

  // Settings: a refused price shows the server's message under the price field, then a good one saves.
  const price = kine.getByLabel('Prix habituel d’une séance hors nomenclature, en euros');
  await price.fill('-5');
  await kine.getByRole('button', { name: 'Enregistrer les réglages' }).click();
  const priceError = kine.locator('.settings .field-error[data-for="hn_price_cents"]');
  await priceError.waitFor();
  assert.equal(await priceError.textContent(), 'Prix habituel d’une séance hors nomenclature, en euros : cette valeur n’est pas acceptée. Vérifiez-la.', 'the field is named in the error');
  assert.equal(await price.getAttribute('aria-invalid'), 'true');
  await kine.getByLabel('J’ai déclaré un protocole de coopération').check();
  await price.fill('32,50');
  await kine.getByRole('button', { name: 'Enregistrer les réglages' }).click();
  await kine.getByText('Réglages enregistrés.').waitFor();
  assert.equal(await priceError.count(), 0);
  assert.deepEqual(await api.get('/api/settings'), { cooperation_protocol: true, hn_price_cents: 3250, practice_departement: null });
  await checkAxe(kine, 'billing page');
  await kine.screenshot({ path: join(SCREENSHOTS, 'dashboard-10-billing.png'), fullPage: true });

  // With the protocol declared, direct access is reimbursed.
  const direct = await api.post('/api/sessions', { patient: hnPatient.id, starts_at: new Date().toISOString(), act_code: session.act_code, direct_access: 'acute_low_back_pain' });
  assert.equal(direct.billing_class, 'reimbursable');
  assert.equal(direct.billing_reason.code, 'direct_access');
  await api.post(`/api/sessions/${direct.id}/cancel`);

  // The billing page in English keeps the same facts.
  await kine.getByRole('button', { name: 'Switch to English' }).click();
  await kine.getByRole('heading', { name: 'Billing', level: 1 }).waitFor();
  await kine.getByText(/^Telehealth share: /).waitFor();
  await kine.getByRole('button', { name: 'Français' }).click();
  await kine.getByRole('heading', { name: 'Facturation', level: 1 }).waitFor();

  patientWatch.check();
  kineWatch.check();
  await patientCtx.close();
  await kineCtx.close();
  await api.ctx.dispose();
});
