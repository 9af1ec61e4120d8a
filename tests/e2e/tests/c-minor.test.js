// c) A minor: the parent consents on the join page, named with their relation (the 12-year-old is
// never asked to consent herself); the parent's presence is attested by name; the call proceeds
// only after both; the record says it in words, never as an incident.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertFramesRise, checkAxe, kineApi, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, server, shot, waitConnected, watchPage, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('c) a minor: parent attestation first, by name, then the call', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Léo Petit', birth: '2013-06-02', consent: true, representative: { name: 'Sophie Petit', relation: 'mère' } });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await patientToJoin(page, link.url);
  await screen(page, 'attest-parent');
  await checkAxe(page, 'patient attestation');
  await shot(page, 'patient-08-attest-parent');

  // Not admitted while the attestation is missing, even with auto-admit and the kiné present.
  await page.waitForTimeout(1_500);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pcs.length), 0, 'no peer connection before the attestation');
  await screen(page, 'attest-parent');

  // The companion is named: a ticked box alone is not an attestation.
  await page.getByLabel('Je confirme qu’un parent ou un adulte autorisé est présent.').check();
  await page.getByRole('button', { name: 'Confirmer' }).click();
  await page.locator('#attest-error').getByText('Indiquez le nom de la personne présente et son lien avec le patient.').waitFor();
  await screen(page, 'attest-parent');
  await page.getByLabel('Nom et prénom de la personne présente').fill('Sophie Petit');
  await page.getByLabel('Son lien avec le patient (mère, fils, aidant…)').fill('mère');
  await page.getByRole('button', { name: 'Confirmer' }).click();
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await assertFramesRise(page, 'patient');
  await screen(page, 'call');

  const record = await api.get(`/api/sessions/${session.id}/record`);
  assert.deepEqual(record.attestations.map((/** @type {any} */ a) => a.words), ['En présence de Sophie Petit (mère)']);
  assert.equal(record.incidents.length, 0, 'a presence is no incident');
  assert.equal(record.consent, 'Consentement au télésoin donné par Sophie Petit (mère), représentant légal du patient mineur');

  await kineEnds(kine);
  await screen(page, 'ended');
  watch.check();
  await ctx.close();
  await kineCtx.close();
});

test('c) a minor without a recorded consent: the parent consents on the join page, named', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Léa Martin', birth: '2014-09-12', consent: false });
  const session = await api.session(p.id, { autoAdmit: true, consentOnJoin: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await patientToJoin(page, link.url);
  await screen(page, 'consent');
  // The parent's agreement, not the child's.
  await page.getByRole('heading', { name: 'L’accord du parent pour le télésoin' }).waitFor();
  await checkAxe(page, 'parent consent');
  await shot(page, 'patient-07-parent-consent');
  const tick = page.getByLabel('Je suis son parent ou son représentant légal, j’ai lu ce texte et je suis d’accord.');
  await tick.check();
  await page.getByRole('button', { name: 'Je suis d’accord : rejoindre la séance' }).click();
  await page.locator('#consent-error').getByText('Indiquez votre nom et votre lien avec le patient.').waitFor();
  await page.getByLabel('Votre nom et prénom (parent ou représentant légal)').fill('Karim Martin');
  await page.getByLabel('Votre lien avec le patient (mère, père, tuteur…)').fill('père');
  await page.getByRole('button', { name: 'Je suis d’accord : rejoindre la séance' }).click();

  // Then the parent's presence, with the name already given.
  await screen(page, 'attest-parent');
  assert.equal(await page.getByLabel('Nom et prénom de la personne présente').inputValue(), 'Karim Martin');
  assert.equal(await page.getByLabel('Son lien avec le patient (mère, fils, aidant…)').inputValue(), 'père');
  await page.getByLabel('Je confirme qu’un parent ou un adulte autorisé est présent.').check();
  await page.getByRole('button', { name: 'Confirmer' }).click();
  await Promise.all([waitConnected(page), waitConnected(kine)]);
  await screen(page, 'call');

  const file = await api.get(`/api/patients/${p.id}`);
  assert.equal(file.consents.length, 1);
  const c = file.consents[0];
  assert.deepEqual([c.method, c.representative_name, c.representative_relation], ['join_page', 'Karim Martin', 'père'], 'the representative consented, named');
  const record = await api.get(`/api/sessions/${session.id}/record`);
  assert.equal(record.consent, 'Consentement au télésoin donné par Karim Martin (père), représentant légal du patient mineur');
  assert.deepEqual(record.attestations.map((/** @type {any} */ a) => a.words), ['En présence de Karim Martin (père)']);

  await kineEnds(kine);
  await screen(page, 'ended');

  // The kiné's file shows who consented, by name.
  await kine.goto(`${server().url}/app#/patients/${p.id}`);
  await kine.getByText('Donné par Karim Martin (père), représentant légal').waitFor();
  watch.check();
  await ctx.close();
  await kineCtx.close();
});

test('c) the kiné records a minor\'s consent: the legal representative is named, or it is refused under the field', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Tom Girard', birth: '2015-02-20', consent: false });
  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  const watch = watchPage(kine);
  await loginDashboard(kine);
  await kine.goto(`${server().url}/app#/patients/${p.id}`);
  await kine.getByRole('heading', { name: 'Consentements au télésoin' }).waitFor();
  const name = kine.getByLabel('Nom du représentant légal qui consent');
  const relation = kine.getByLabel('Son lien avec le patient (mère, père, tuteur…)');
  await kine.getByRole('button', { name: 'Enregistrer le consentement' }).click();
  const error = kine.locator('.field-error[data-code="representative_required"]');
  await error.waitFor();
  assert.match((await error.textContent()) ?? '', /Le patient est mineur : le consentement est celui de son représentant légal/);
  await checkAxe(kine, 'minor consent form with its refusal');
  await name.fill('Nadia Girard');
  await relation.fill('mère');
  await kine.getByRole('button', { name: 'Enregistrer le consentement' }).click();
  await kine.getByText('Donné par Nadia Girard (mère), représentant légal').waitFor();
  const file = await api.get(`/api/patients/${p.id}`);
  assert.deepEqual([file.consents[0].representative_name, file.consents[0].representative_relation], ['Nadia Girard', 'mère']);
  watch.check();
  await kineCtx.close();
});
