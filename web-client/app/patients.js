// Patients: the list, a new patient, and one patient's file (in-person visits, consents,
// prescriptions): the facts the server checks before it lets anyone into a call.

import { get, post } from '../lib/api.js';
import { h, field, replace } from '../lib/dom.js';
import { CONSENT_TEXT_VERSION, fmtDay, fmtDateTime, t } from '../lib/i18n.js';
import { ageOn, go, ymd } from './state.js';
import { errorAlert, handleError } from './ui.js';
import { contactCard } from './reach.js';

/** @typedef {import('../lib/types.js').Patient} Patient */
/** @typedef {import('../lib/types.js').PatientFile} PatientFile */
/** @typedef {import('../lib/i18n.js').Key} Key */

/** @param {HTMLElement} main */
export async function renderPatients(main) {
  /** @type {Patient[]} */
  const patients = await get('/api/patients');
  const list = h(
    'ul',
    { class: 'patient-list' },
    ...patients
      .slice()
      .sort((a, b) => a.display_name.localeCompare(b.display_name, 'fr'))
      .map((p) =>
        h(
          'li',
          {},
          h('a', { class: 'patient-link', attrs: { href: `#/patients/${p.id}` } }, p.display_name),
          ' ',
          h('span', { class: 'hint' }, fmtDay(p.birth_date)),
          ' ',
          flags(p),
        ),
      ),
  );
  const name = h('input', { attrs: { type: 'text', required: true, name: 'display_name', autocomplete: 'off' } });
  const birth = h('input', { attrs: { type: 'date', required: true, name: 'birth_date' } });
  const autonomy = h('input', { attrs: { type: 'checkbox', name: 'loss_of_autonomy' } });
  const gp = h('input', { attrs: { type: 'text', name: 'gp_contact', autocomplete: 'off' } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const form = h(
    'form',
    { class: 'card form' },
    h('h2', { t: 'app.patients.new' }),
    error,
    field(name, 'app.patients.name'),
    field(birth, 'app.patients.birth'),
    field(autonomy, 'app.patients.autonomy'),
    field(gp, 'app.patients.gp'),
    h('button', { class: 'btn btn-primary', t: 'app.patients.create', attrs: { type: 'submit' } }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      /** @type {Patient} */
      const created = await post('/api/patients', {
        display_name: name.value.trim(),
        birth_date: birth.value,
        loss_of_autonomy: autonomy.checked,
        gp_contact: gp.value.trim() || null,
      });
      go(`/patients/${created.id}`);
    } catch (err) {
      if (!handleError(err)) replace(error, errorAlert(err));
    }
  });
  replace(main, h('h1', { t: 'app.patients.title' }), patients.length ? list : h('p', { class: 'empty', t: 'app.patients.empty' }), form);
}

/** @param {Patient} p */
function flags(p) {
  const minor = ageOn(p.birth_date) < 18;
  return h(
    'span',
    { class: 'flags' },
    minor ? h('span', { class: 'badge badge-warn', t: 'app.patient.minor' }) : null,
    p.loss_of_autonomy ? h('span', { class: 'badge badge-warn', t: 'app.patient.autonomy' }) : null,
  );
}

/**
 * A small form that POSTs and then redraws the patient file.
 * @param {Key} submitKey
 * @param {HTMLElement[]} fields
 * @param {() => Promise<unknown>} send
 * @param {() => void} done
 */
function miniForm(submitKey, fields, send, done) {
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const form = h('form', { class: 'mini-form' }, error, h('div', { class: 'row' }, ...fields, h('button', { class: 'btn btn-secondary', t: submitKey, attrs: { type: 'submit' } })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await send();
      done();
    } catch (err) {
      if (!handleError(err)) replace(error, errorAlert(err));
    }
  });
  return form;
}

/**
 * @param {HTMLElement} main
 * @param {string} id
 */
export async function renderPatient(main, id) {
  /** @type {PatientFile} */
  const file = await get(`/api/patients/${id}`);
  const p = file.patient;
  const redraw = () => void renderPatient(main, id).catch((e) => handleError(e) || replace(main, errorAlert(e)));
  const today = ymd(new Date());
  const yearAgo = new Date();
  yearAgo.setFullYear(yearAgo.getFullYear() - 1);

  // In-person visits.
  const visitDate = h('input', { attrs: { type: 'date', required: true, value: today, max: today } });
  const visitKind = h('select', {}, h('option', { attrs: { value: 'bilan' }, t: 'app.patient.visit.bilan' }), h('option', { attrs: { value: 'session' }, t: 'app.patient.visit.session' }));
  const visits = h(
    'section',
    { class: 'card', attrs: { 'aria-labelledby': 'visits-h' } },
    h('h2', { t: 'app.patient.visits', attrs: { id: 'visits-h' } }),
    file.visits.length
      ? h(
          'ul',
          {},
          ...file.visits
            .slice()
            .sort((a, b) => b.date.localeCompare(a.date))
            .map((v) => h('li', {}, `${fmtDay(v.date)} — `, h('span', { t: v.kind === 'bilan' ? 'app.patient.visit.bilan' : 'app.patient.visit.session' }))),
        )
      : h('p', { class: 'alert', t: 'app.patient.visits.empty' }),
    miniForm('app.patient.visit.add', [field(visitDate, 'app.patient.visit.date'), field(visitKind, 'app.patient.visit.kind')], () => post(`/api/patients/${id}/visits`, { date: visitDate.value, kind: visitKind.value }), redraw),
  );

  // Consents.
  const method = h('select', {}, h('option', { attrs: { value: 'oral' }, t: 'app.patient.consent.oral' }), h('option', { attrs: { value: 'written' }, t: 'app.patient.consent.written' }));
  /** @type {Record<string, Key>} */
  const methods = { oral: 'app.patient.consent.oral', written: 'app.patient.consent.written', join_page: 'app.patient.consent.join_page' };
  const consents = h(
    'section',
    { class: 'card', attrs: { 'aria-labelledby': 'consents-h' } },
    h('h2', { t: 'app.patient.consents', attrs: { id: 'consents-h' } }),
    file.consents.length
      ? h(
          'ul',
          {},
          ...file.consents.map((c) => {
            const withdraw = c.withdrawn_at ? null : h('button', { class: 'btn btn-small btn-secondary', t: 'app.patient.consent.withdraw', attrs: { type: 'button' } });
            withdraw?.addEventListener('click', async () => {
              if (!confirm(t('app.patient.consent.withdraw.confirm'))) return;
              try {
                await post(`/api/consents/${c.id}/withdraw`);
                redraw();
              } catch (e) {
                if (!handleError(e)) withdraw.after(errorAlert(e));
              }
            });
            return h(
              'li',
              { class: c.withdrawn_at ? 'withdrawn' : '' },
              h('span', { t: c.recorded_by === 'patient' ? 'app.patient.consent.by.patient' : 'app.patient.consent.by.kine' }),
              ' — ',
              h('span', { t: 'app.patient.consent.line', tp: { method: methods[c.method] ? t(methods[c.method]) : c.method, date: fmtDateTime(c.recorded_at), version: c.text_version } }),
              c.withdrawn_at ? h('span', { class: 'badge badge-warn', t: 'app.patient.consent.withdrawn', tp: { date: fmtDateTime(c.withdrawn_at) } }) : null,
              ' ',
              withdraw,
            );
          }),
        )
      : h('p', { class: 'hint', t: 'app.patient.consents.empty' }),
    miniForm('app.patient.consent.add', [field(method, 'app.patient.consent.method')], () => post(`/api/patients/${id}/consents`, { text_version: CONSENT_TEXT_VERSION, method: method.value }), redraw),
  );

  // Prescriptions.
  const rxDate = h('input', { attrs: { type: 'date', required: true, max: today } });
  const prescriptions = h(
    'section',
    { class: 'card', attrs: { 'aria-labelledby': 'rx-h' } },
    h('h2', { t: 'app.patient.prescriptions', attrs: { id: 'rx-h' } }),
    file.prescriptions.length
      ? h(
          'ul',
          {},
          ...file.prescriptions
            .slice()
            .sort((a, b) => b.date.localeCompare(a.date))
            .map((r) =>
              h('li', {}, h('span', { t: 'app.patient.prescription.line', tp: { date: fmtDay(r.date) } }), r.date < ymd(yearAgo) ? h('span', { class: 'badge badge-warn', t: 'app.patient.prescription.old' }) : null),
            ),
        )
      : h('p', { class: 'hint', t: 'app.patient.prescriptions.empty' }),
    miniForm('app.patient.prescription.add', [field(rxDate, 'app.patient.prescription.date')], () => post(`/api/patients/${id}/prescriptions`, { date: rxDate.value }), redraw),
  );

  const age = ageOn(p.birth_date);
  replace(
    main,
    h('p', {}, h('a', { t: 'app.patient.back', attrs: { href: '#/patients' } })),
    h('div', { class: 'page-head' }, h('h1', {}, p.display_name), h('a', { class: 'btn btn-primary', t: 'app.today.schedule', attrs: { href: `#/schedule?patient=${p.id}` } })),
    h(
      'div',
      { class: 'card patient-facts' },
      h('p', {}, `${fmtDay(p.birth_date)} — `, h('span', { t: 'app.patient.age', tp: { age } })),
      flags(p),
      h('p', { t: p.gp_contact ? 'app.patient.gp' : 'app.patient.gp.none', tp: { gp: p.gp_contact ?? '' } }),
    ),
    contactCard(p.id),
    h('div', { class: 'grid' }, visits, consents, prescriptions),
  );
}
