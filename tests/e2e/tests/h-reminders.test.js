// h) The kiné's reminder settings, on the Facturation page: the default (the day before, one hour
// before) shown in words, a new choice saved and applied to a session already scheduled, the
// browser's own check of what was typed, and the server's refusal shown under the field in French.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAxe, kineApi, launch, loginDashboard, newContext, shot, watchPage } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('h) reminder settings: shown, saved, applied to a scheduled session, refusals under the field', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Rappel', consent: true });
  // Three days ahead: every reminder of either choice is still to come.
  const startsAt = new Date(Date.now() + 3 * 24 * 3600_000);
  const session = await api.session(p.id, { startsAt });

  const ctx = await newContext(browser, 'kine');
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await loginDashboard(page);
  await page.getByRole('link', { name: 'Facturation' }).click();
  await page.getByRole('heading', { name: 'Rappels au patient', level: 2 }).waitFor();
  const input = page.getByLabel('Envoyer un rappel avant la séance');
  assert.equal(await input.inputValue(), '1 j, 1 h', 'the default, in words');
  await checkAxe(page, 'reminder settings');

  // Something the browser cannot read: its own words under the field, nothing sent.
  await input.fill('la veille');
  await page.getByRole('button', { name: 'Enregistrer les rappels' }).click();
  const error = page.locator('.field-error[data-for="reminder_offsets_minutes"]');
  await error.waitFor();
  assert.match((await error.textContent()) ?? '', /Écrivez des durées comme « 1 j »/);
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  assert.deepEqual((await api.get('/api/reach')).reminder_offsets_minutes, [1440, 60], 'nothing saved');

  // Further than the server allows (30 days): its French words under the field.
  await input.fill('1 j, 31 j');
  await page.getByRole('button', { name: 'Enregistrer les rappels' }).click();
  await error.waitFor();
  const refused = (await error.textContent()) ?? '';
  assert.ok(refused.includes('entre 1 minute et 30 jours'), refused);
  assert.ok(refused.startsWith('Envoyer un rappel avant la séance'), `the field is named: ${refused}`);
  await shot(page, 'kine-30-reminders-refused');

  // A new choice: saved, shown back in words, and applied to the session already scheduled.
  await input.fill('30 min, 2 j');
  await page.getByRole('button', { name: 'Enregistrer les rappels' }).click();
  await page.getByText('Rappels enregistrés, pour les séances déjà planifiées aussi.').waitFor();
  assert.equal(await error.count(), 0, 'the error is gone');
  assert.equal(await input.inputValue(), '2 j, 30 min');
  assert.deepEqual((await api.get('/api/reach')).reminder_offsets_minutes, [2880, 30]);
  /** @type {{kind: string, channel: string, state: string, due_at: string}[]} */
  const messages = await api.get(`/api/sessions/${session.id}/messages`);
  const pendingEmail = messages.filter((m) => m.kind === 'reminder' && m.channel === 'email' && m.state === 'pending');
  const before = pendingEmail.map((m) => Math.round((startsAt.getTime() - new Date(m.due_at).getTime()) / 60_000)).sort((a, b) => b - a);
  assert.deepEqual(before, [2880, 30], `the session's reminders follow: ${JSON.stringify(messages)}`);
  assert.ok(
    messages.some((m) => m.kind === 'reminder' && m.state === 'cancelled'),
    'the old ones are stopped',
  );
  await shot(page, 'kine-31-reminders-saved');

  // The page reloaded shows the saved choice; then back to the default for the other tests.
  await page.reload();
  await page.getByRole('heading', { name: 'Rappels au patient', level: 2 }).waitFor();
  assert.equal(await input.inputValue(), '2 j, 30 min');
  await input.fill('1 j, 1 h');
  await page.getByRole('button', { name: 'Enregistrer les rappels' }).click();
  await page.getByText('Rappels enregistrés, pour les séances déjà planifiées aussi.').waitFor();
  assert.deepEqual((await api.get('/api/reach')).reminder_offsets_minutes, [1440, 60]);
  watch.check();
  await ctx.close();
});
