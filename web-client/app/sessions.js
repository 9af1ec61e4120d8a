// Sessions of a day with their live state, scheduling, and the patient link.

import { get, post } from '../lib/api.js';
import { h, field, replace } from '../lib/dom.js';
import { bind, fmtDateTime, fmtDay, fmtNumber, fmtTime, fmtDate, t } from '../lib/i18n.js';
import { openCall, activeSessionId } from './call.js';
import { shareView } from './billing.js';
import { go, parseEuros, state, ymd } from './state.js';
import { billingBadge, clearFieldErrors, handleError, hintedField, localFieldError, priceBadge, refresh, showFormError } from './ui.js';
import { sendCard } from './reach.js';

/** @typedef {import('../lib/types.js').Session} Session */
/** @typedef {import('../lib/types.js').Patient} Patient */
/** @typedef {import('../lib/types.js').Link} Link */
/** @typedef {import('../lib/i18n.js').Key} Key */

/** The table on screen, updated in place by the poll. */
const view = {
  day: '',
  /** @type {HTMLTableSectionElement | null} */
  body: null,
  /** @type {Map<string, {tr: HTMLTableRowElement, sig: string}>} */
  rows: new Map(),
};

/**
 * @param {HTMLElement} main
 * @param {string} day YYYY-MM-DD
 * @returns {Promise<() => void>}
 */
export async function renderSessions(main, day) {
  /** @type {Session[]} */
  const sessions = await get(`/api/sessions?day=${encodeURIComponent(day)}`);
  const dayInput = h('input', { attrs: { type: 'date', value: day } });
  dayInput.addEventListener('change', () => {
    if (dayInput.value) go(`/sessions?day=${dayInput.value}`);
  });
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'table sessions' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...(/** @type {Key[]} */ (['app.session.time', 'app.session.patient', 'app.session.act', 'app.session.billing', 'app.session.status', 'app.session.actions'])).map((k) =>
          h('th', { t: k, attrs: { scope: 'col' } }),
        ),
      ),
    ),
    body,
  );
  view.day = day;
  view.body = body;
  view.rows.clear();
  fillRows(sessions);
  replace(
    main,
    h('div', { class: 'page-head' }, h('h1', { t: 'app.today.title', tp: { date: fmtDay(day) } }), h('a', { class: 'btn btn-primary', t: 'app.today.schedule', attrs: { href: '#/schedule' } })),
    h('div', { class: 'row' }, field(dayInput, 'app.today.day')),
    sessions.length ? h('div', { class: 'table-wrap' }, table) : h('p', { class: 'empty', t: 'app.today.empty' }),
  );
  return () => {
    view.body = null;
    view.rows.clear();
  };
}

/** The poll's fresh list of today's sessions. @param {Session[]} sessions */
export function updateSessions(sessions) {
  if (!view.body || view.day !== ymd(new Date())) return;
  const ids = sessions.map((s) => s.id).join(',');
  if (ids !== [...view.rows.keys()].join(',')) {
    view.rows.clear();
    view.body.replaceChildren();
  }
  fillRows(sessions);
}

/** @param {Session[]} sessions */
function fillRows(sessions) {
  const body = view.body;
  if (!body) return;
  const sorted = [...sessions].sort((a, b) => a.starts_at.localeCompare(b.starts_at));
  for (const s of sorted) {
    const sig = JSON.stringify([s.status, s.billing_class, s.billing_reason?.code, s.live ?? [], activeSessionId() === s.id]);
    const known = view.rows.get(s.id);
    if (known && known.sig === sig) continue;
    const tr = row(s);
    if (known) {
      // Keep keyboard focus on the same action across the update.
      const focused = document.activeElement instanceof HTMLElement && known.tr.contains(document.activeElement) ? document.activeElement.dataset.action : undefined;
      known.tr.replaceWith(tr);
      if (focused) /** @type {HTMLElement | null} */ (tr.querySelector(`[data-action="${focused}"]`))?.focus();
    } else {
      body.append(tr);
    }
    view.rows.set(s.id, { tr, sig });
  }
}

/** @param {Session} s @returns {HTMLTableRowElement} */
function row(s) {
  const live = s.live ?? [];
  const patient = live.find((p) => p.role === 'patient');
  const kine = live.find((p) => p.role === 'kine');
  const waiting = live.filter((p) => p.role !== 'kine' && p.connected && !p.admitted);
  /** @type {HTMLElement[]} */
  const liveBadges = [];
  if (waiting.length) liveBadges.push(h('span', { class: 'badge badge-warn waiting-badge', t: 'app.live.waiting', tp: { name: s.patient_name } }));
  else if (patient?.connected && patient.admitted) liveBadges.push(h('span', { class: 'badge badge-live', t: 'app.live.incall' }));
  else if (s.status === 'live') liveBadges.push(h('span', { class: 'badge', t: 'app.live.offline' }));
  if (kine?.connected) liveBadges.push(h('span', { class: 'badge badge-live', t: 'app.live.kine' }));

  const open = s.status === 'scheduled' || s.status === 'live';
  /** @param {Key} key @param {string} action @param {string} cls @param {() => void} fn */
  const button = (key, action, cls, fn) => {
    const b = h('button', { class: `btn btn-small ${cls}`, attrs: { type: 'button', 'data-action': action } }, h('span', { t: key }), h('span', { class: 'visually-hidden' }, ` — ${s.patient_name}`));
    b.addEventListener('click', fn);
    return b;
  };
  const actions = [];
  if (open && waiting.length) actions.push(button('app.action.admit', 'admit', 'btn-primary', () => void openCall(s, waiting[0].participant)));
  if (open) actions.push(button('app.action.join', 'join', waiting.length ? 'btn-secondary' : 'btn-primary', () => void openCall(s, null)));
  if (open)
    actions.push(
      button('app.action.link', 'link', 'btn-secondary', () => {
        state.links.delete(s.id);
        go(`/link/${s.id}`);
      }),
    );
  if (s.status === 'live')
    actions.push(
      button('app.action.end', 'end', 'btn-danger', async () => {
        try {
          await post(`/api/sessions/${s.id}/end`);
          refresh();
        } catch (e) {
          if (!handleError(e)) alert(t('common.error.generic'));
        }
      }),
    );
  if (s.status === 'scheduled')
    actions.push(
      button('app.action.cancel', 'cancel', 'btn-secondary', async () => {
        if (!confirm(t('app.action.cancel.confirm'))) return;
        try {
          await post(`/api/sessions/${s.id}/cancel`);
          refresh();
        } catch (e) {
          if (!handleError(e)) alert(t('common.error.generic'));
        }
      }),
    );
  if (s.status !== 'cancelled') actions.push(button('app.action.record', 'record', 'btn-secondary', () => go(`/record/${s.id}`)));

  return h(
    'tr',
    { attrs: { 'data-session': s.id, 'data-status': s.status } },
    h('td', {}, fmtTime(s.starts_at)),
    h('td', {}, h('a', { attrs: { href: `#/patients/${s.patient}` } }, s.patient_name)),
    h('td', {}, `${s.act_label} `, priceBadge(s)),
    h('td', {}, billingBadge(s.billing_class, s.billing_reason)),
    h('td', { class: 'live-cell' }, h('span', { class: `status status-${s.outcome === 'not_held' ? 'not_held' : s.status}`, attrs: { 'data-outcome': s.outcome ?? '' }, t: /** @type {Key} */ (s.outcome === 'not_held' ? 'app.session.outcome.not_held' : `app.session.status.${s.status}`) }), ' ', ...liveBadges),
    h('td', {}, h('div', { class: 'actions' }, ...actions)),
  );
}

/**
 * @param {HTMLElement} main
 * @param {string | null} patientId preselected patient
 */
export async function renderSchedule(main, patientId) {
  /** @type {Patient[]} */
  const patients = await get('/api/patients');
  const patient = h('select', { attrs: { required: true, name: 'patient' } }, ...patients.map((p) => h('option', { attrs: { value: p.id, selected: p.id === patientId } }, p.display_name)));
  const act = h(
    'select',
    { attrs: { required: true, name: 'act' } },
    ...state.acts.map((a) =>
      a.telesoin_allowed
        ? h('option', { attrs: { value: a.code }, t: 'app.schedule.act.option', tp: { label: `${a.code} — ${a.label}`, letter: a.telesoin_letter, coef: fmtNumber(a.amk_coefficient) } })
        : h('option', { attrs: { value: a.code, disabled: true, 'data-not-remote': a.not_remote ?? '' }, t: 'app.schedule.act.not_remote', tp: { label: `${a.code} — ${a.label}` } }),
    ),
  );
  const now = new Date(Date.now() + 5 * 60_000);
  now.setMinutes(Math.floor(now.getMinutes() / 5) * 5);
  const date = h('input', { attrs: { type: 'date', required: true, name: 'date', value: ymd(now) } });
  const time = h('input', { attrs: { type: 'time', required: true, name: 'time', value: `${String(now.getHours()).padStart(2, '0')}:${String(now.getMinutes()).padStart(2, '0')}` } });
  const autoAdmit = h('input', { attrs: { type: 'checkbox', name: 'auto_admit' } });
  const consentOnJoin = h('input', { attrs: { type: 'checkbox', name: 'patient_consent_on_join', checked: true } });
  /** @type {[string, Key][]} */
  const directOptions = [
    ['', 'app.schedule.direct.none'],
    ['acute_low_back_pain', 'app.schedule.direct.acute_low_back_pain'],
    ['ankle_sprain', 'app.schedule.direct.ankle_sprain'],
  ];
  const direct = h('select', { attrs: { name: 'direct_access' } }, ...directOptions.map(([value, key]) => h('option', { attrs: { value }, t: key })));
  const price = h('input', { attrs: { type: 'text', name: 'hn_price_cents', inputmode: 'decimal', autocomplete: 'off', spellcheck: 'false' } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const form = h(
    'form',
    { class: 'card form' },
    error,
    field(patient, 'app.schedule.patient'),
    field(act, 'app.schedule.act'),
    h('div', { class: 'row' }, field(date, 'app.schedule.date'), field(time, 'app.schedule.time')),
    field(autoAdmit, 'app.schedule.auto_admit'),
    field(consentOnJoin, 'app.schedule.consent_on_join'),
    hintedField(direct, 'app.schedule.direct', 'app.schedule.direct.hint'),
    hintedField(price, 'app.schedule.hn_price', 'app.schedule.hn_price.hint'),
    h('button', { class: 'btn btn-primary', t: 'app.schedule.submit', attrs: { type: 'submit' } }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    error.replaceChildren();
    const cents = price.value.trim() ? parseEuros(price.value) : undefined;
    if (cents === null) {
      localFieldError(price, 'app.price.invalid');
      return;
    }
    try {
      /** @type {Session} */
      const session = await post('/api/sessions', {
        patient: patient.value,
        starts_at: new Date(`${date.value}T${time.value}`).toISOString(),
        act_code: act.value,
        auto_admit: autoAdmit.checked,
        patient_consent_on_join: consentOnJoin.checked,
        ...(direct.value ? { direct_access: direct.value } : {}),
        ...(cents !== undefined ? { hn_price_cents: cents } : {}),
      });
      /** @type {Link} */
      const link = await post(`/api/sessions/${session.id}/links`, { role: 'patient' });
      state.links.set(session.id, link);
      refresh();
      go(`/link/${session.id}`);
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
    }
  });
  // The télésoin share of the year so far, against the convention cap: shown before scheduling,
  // with a warning when one more remote session would exceed it.
  const year = new Date().getFullYear();
  const shareBox = h('section', { class: 'card share schedule-share', attrs: { 'aria-live': 'polite', 'aria-labelledby': 'share-h' } }, h('h2', { t: 'app.schedule.share', attrs: { id: 'share-h' } }));
  try {
    /** @type {import('../lib/types.js').Share} */
    const share = await get(`/api/share?from=${year}-01-01&to=${year}-12-31`);
    shareBox.append(...shareView(share));
  } catch (e) {
    if (handleError(e)) return;
  }
  replace(
    main,
    h('h1', { t: 'app.schedule.title' }),
    shareBox,
    patients.length ? form : h('p', {}, h('a', { t: 'app.schedule.patient.none', attrs: { href: '#/patients' } })),
  );
}

/**
 * The patient link of a session: copy it, or open a prepared e-mail.
 * @param {HTMLElement} main
 * @param {string} sessionId
 */
export async function renderLink(main, sessionId) {
  /** @type {Session} */
  const session = await get(`/api/sessions/${sessionId}`);
  let link = state.links.get(sessionId);
  if (!link) {
    link = /** @type {Link} */ (await post(`/api/sessions/${sessionId}/links`, { role: 'patient' }));
    state.links.set(sessionId, link);
  }
  // The short link (`/j#CODE`) when there is one: it fits in an SMS.
  const url = link.short_url ?? link.url;
  const input = h('input', { class: 'link-input', attrs: { type: 'text', readonly: true, value: url, spellcheck: 'false' } });
  input.addEventListener('focus', () => input.select());
  const status = h('p', { class: 'hint', attrs: { role: 'status' } });
  const copy = h('button', { class: 'btn btn-primary', t: 'app.link.copy', attrs: { type: 'button', 'data-action': 'copy-link' } });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(url);
      bind(status, 'app.link.copied');
    } catch {
      input.focus();
      input.select();
      bind(status, 'app.link.copy.failed');
    }
  });
  const subject = t('app.link.mail.subject');
  const body = t('app.link.mail.body', { date: fmtDate(session.starts_at), time: fmtTime(session.starts_at), url, kine: state.me?.name ?? '' });
  const mail = h('a', { class: 'btn btn-secondary', t: 'app.link.mail', attrs: { href: `mailto:?subject=${encodeURIComponent(subject)}&body=${encodeURIComponent(body)}` } });
  replace(
    main,
    h('h1', { t: 'app.link.title', tp: { name: session.patient_name } }),
    h(
      'section',
      { class: `card billing-card billing-${session.billing_class}`, attrs: { 'aria-labelledby': 'billing-h' } },
      h('h2', { t: 'app.link.billing', attrs: { id: 'billing-h' } }),
      billingBadge(session.billing_class, session.billing_reason, true),
    ),
    h(
      'div',
      { class: 'card' },
      field(input, 'app.link.label'),
      h('p', { class: 'hint', t: 'app.link.validity', tp: { from: fmtDateTime(link.not_before), to: fmtDateTime(link.expires_at) } }),
      h('div', { class: 'row' }, copy, mail),
      status,
    ),
    sendCard(sessionId, session.patient),
    h('p', {}, h('a', { t: 'app.record.back', attrs: { href: '#/sessions' } })),
  );
}

