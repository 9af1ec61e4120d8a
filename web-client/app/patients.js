// Patients: the list, a new patient, and one patient's file (in-person visits, consents,
// prescriptions): the facts the server checks before it lets anyone into a call.

import { get, post, put } from '../lib/api.js';
import { h, field, replace } from '../lib/dom.js';
import { CONSENT_TEXT_VERSION, fmtDay, fmtDateTime, t } from '../lib/i18n.js';
import { ageOn, go, ymd } from './state.js';
import { clearFieldErrors, errorAlert, handleError, showFormError } from './ui.js';
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
  const departement = h('input', { attrs: { type: 'text', name: 'departement', autocomplete: 'off', inputmode: 'numeric', size: 6 } });
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
    field(departement, 'app.patients.departement'),
    h('button', { class: 'btn btn-primary', t: 'app.patients.create', attrs: { type: 'submit' } }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    try {
      /** @type {Patient} */
      const created = await post('/api/patients', {
        display_name: name.value.trim(),
        birth_date: birth.value,
        loss_of_autonomy: autonomy.checked,
        gp_contact: gp.value.trim() || null,
        departement: departement.value.trim() || null,
      });
      go(`/patients/${created.id}`);
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
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
    clearFieldErrors(form);
    try {
      await send();
      done();
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
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
  const visitDate = h('input', { attrs: { type: 'date', required: true, value: today, max: today, name: 'date' } });
  const visitKind = h(
    'select',
    { attrs: { name: 'kind' } },
    h('option', { attrs: { value: 'bilan' }, t: 'app.patient.visit.bilan' }),
    h('option', { attrs: { value: 'session' }, t: 'app.patient.visit.session' }),
    h('option', { attrs: { value: 'hospital_bilan' }, t: 'app.patient.visit.hospital_bilan' }),
  );
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
            .map((v) => h('li', {}, `${fmtDay(v.date)} — `, h('span', { t: v.kind === 'bilan' ? 'app.patient.visit.bilan' : v.kind === 'hospital_bilan' ? 'app.patient.visit.hospital_bilan' : 'app.patient.visit.session' }))),
        )
      : h('p', { class: 'alert', t: 'app.patient.visits.empty' }),
    miniForm('app.patient.visit.add', [field(visitDate, 'app.patient.visit.date'), field(visitKind, 'app.patient.visit.kind')], () => post(`/api/patients/${id}/visits`, { date: visitDate.value, kind: visitKind.value }), redraw),
  );

  // Consents. A minor's is the legal representative's: the kiné names them.
  const minor = ageOn(p.birth_date) < 18;
  const repName = h('input', { attrs: { type: 'text', name: 'representative_name', maxlength: 120 } });
  const repRelation = h('input', { attrs: { type: 'text', name: 'representative_relation', maxlength: 40 } });
  const method = h('select', { attrs: { name: 'method' } }, h('option', { attrs: { value: 'oral' }, t: 'app.patient.consent.oral' }), h('option', { attrs: { value: 'written' }, t: 'app.patient.consent.written' }));
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
              // A minor's consent is the legal representative's: say who, by name.
              c.representative_name
                ? h('span', { class: 'consent-by', t: 'app.patient.consent.by.representative', tp: { name: c.representative_name, relation: c.representative_relation ?? '' } })
                : h('span', { t: c.recorded_by === 'patient' ? 'app.patient.consent.by.patient' : 'app.patient.consent.by.kine' }),
              ' — ',
              h('span', { t: 'app.patient.consent.line', tp: { method: methods[c.method] ? t(methods[c.method]) : c.method, date: fmtDateTime(c.recorded_at), version: c.text_version } }),
              c.withdrawn_at ? h('span', { class: 'badge badge-warn', t: 'app.patient.consent.withdrawn', tp: { date: fmtDateTime(c.withdrawn_at) } }) : null,
              ' ',
              withdraw,
            );
          }),
        )
      : h('p', { class: 'hint', t: 'app.patient.consents.empty' }),
    miniForm(
      'app.patient.consent.add',
      [field(method, 'app.patient.consent.method'), ...(minor ? [field(repName, 'app.patient.consent.rep.name'), field(repRelation, 'app.patient.consent.rep.relation')] : [])],
      () =>
        post(`/api/patients/${id}/consents`, {
          text_version: CONSENT_TEXT_VERSION,
          method: method.value,
          ...(minor ? { representative_name: repName.value.trim(), representative_relation: repRelation.value.trim() } : {}),
        }),
      redraw,
    ),
  );

  // Prescriptions.
  const rxDate = h('input', { attrs: { type: 'date', required: true, max: today, name: 'date' } });
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

  const identity = insCard(file, redraw);

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
    identity,
    contactCard(p.id),
    h('div', { class: 'grid' }, visits, consents, prescriptions),
  );
}

/** @type {Record<string, string>} */
const INS_OIDS = { nir: '1.2.250.1.213.1.4.8', nia: '1.2.250.1.213.1.4.9', test: '1.2.250.1.213.1.4.10', demo: '1.2.250.1.213.1.4.11' };

/**
 * The INS (identité nationale de santé): its status in plain words first (whether documents carry
 * it), then the traits, and the form that records or corrects it.
 * @param {PatientFile} file
 * @param {() => void} done
 */
function insCard(file, done) {
  const ins = file.ins ?? null;
  const p = file.patient;
  /** @param {string} value @param {Key} key */
  const opt = (value, key) => h('option', { attrs: { value }, t: key });
  const status = h(
    'select',
    { attrs: { name: 'status' } },
    opt('provisoire', 'app.patient.ins.opt.provisoire'),
    opt('recuperee', 'app.patient.ins.opt.recuperee'),
    opt('validee', 'app.patient.ins.opt.validee'),
    opt('qualifiee', 'app.patient.ins.opt.qualifiee'),
  );
  const matricule = h('input', { attrs: { type: 'text', name: 'matricule', autocomplete: 'off', inputmode: 'text', maxlength: '21' } });
  const oid = h('select', { attrs: { name: 'oid' } }, opt('nir', 'app.patient.ins.oid.nir'), opt('nia', 'app.patient.ins.oid.nia'), opt('test', 'app.patient.ins.oid.test'), opt('demo', 'app.patient.ins.oid.demo'));
  const names = h('input', { attrs: { type: 'text', name: 'birth_names', autocomplete: 'off', required: true } });
  const first = h('input', { attrs: { type: 'text', name: 'first_names', autocomplete: 'off', required: true } });
  const sex = h('select', { attrs: { name: 'sex' } }, opt('F', 'app.patient.ins.sex.F'), opt('M', 'app.patient.ins.sex.M'), opt('I', 'app.patient.ins.sex.I'));
  const place = h('input', { attrs: { type: 'text', name: 'birth_place', autocomplete: 'off', required: true, maxlength: '5' } });
  if (ins) {
    status.value = ins.status;
    matricule.value = ins.matricule ?? '';
    oid.value = Object.keys(INS_OIDS).find((k) => INS_OIDS[k] === ins.oid) ?? 'nir';
    names.value = ins.birth_names;
    first.value = ins.first_names;
    sex.value = ins.sex;
    place.value = ins.birth_place;
  }
  /** @type {Record<string, Key>} */
  const statusText = {
    qualifiee: 'app.patient.ins.status.qualifiee',
    recuperee: 'app.patient.ins.status.recuperee',
    validee: 'app.patient.ins.status.validee',
    provisoire: 'app.patient.ins.status.provisoire',
  };
  /** @type {Record<string, Key>} */
  const sexText = { M: 'app.patient.ins.sex.M', F: 'app.patient.ins.sex.F', I: 'app.patient.ins.sex.I' };
  const summary = ins
    ? h(
        'div',
        { attrs: { 'data-ins-status': ins.status } },
        h('p', { class: ins.status === 'qualifiee' ? 'alert alert-ok' : 'alert', t: statusText[ins.status] }),
        ins.matricule ? h('p', {}, h('strong', {}, ins.matricule), ` (OID ${ins.oid ?? ''})`) : null,
        h('p', { class: 'hint', t: 'app.patient.ins.traits', tp: { names: ins.birth_names, first: ins.first_names, sex: t(sexText[ins.sex]), date: fmtDay(ins.birth_date), place: ins.birth_place } }),
      )
    : h('p', { class: 'hint', t: 'app.patient.ins.none' });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const form = h(
    'form',
    { class: 'mini-form' },
    error,
    h(
      'div',
      { class: 'row' },
      field(status, 'app.patient.ins.statusLabel'),
      field(matricule, 'app.patient.ins.matricule'),
      field(oid, 'app.patient.ins.oid'),
    ),
    h('div', { class: 'row' }, field(names, 'app.patient.ins.birth_names'), field(first, 'app.patient.ins.first_names'), field(sex, 'app.patient.ins.sex'), field(place, 'app.patient.ins.birth_place')),
    h('p', { class: 'hint', t: 'app.patient.ins.birth_date' }),
    h('p', { class: 'hint', t: 'app.patient.ins.noinsi' }),
    h('button', { class: 'btn btn-secondary', t: 'app.patient.ins.save', attrs: { type: 'submit' } }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const m = matricule.value.trim();
    try {
      await put(`/api/patients/${p.id}/ins`, {
        status: status.value,
        matricule: m || null,
        oid: m ? INS_OIDS[oid.value] : null,
        birth_names: names.value.trim(),
        first_names: first.value.trim(),
        birth_date: p.birth_date,
        sex: sex.value,
        birth_place: place.value.trim(),
      });
      done();
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
    }
  });
  return h('section', { class: 'card', attrs: { 'aria-labelledby': 'ins-h' } }, h('h2', { t: 'app.patient.ins', attrs: { id: 'ins-h' } }), summary, form);
}
