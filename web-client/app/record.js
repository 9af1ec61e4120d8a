// The session record: what billing and the patient file rely on (act, class, billable duration,
// events, technical incidents). Refreshed while the session is live.

import { get, post } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { eventKindLabel, fmtDateTime, fmtDuration, fmtNumber, t } from '../lib/i18n.js';
import { errorAlert, handleError, refresh } from './ui.js';

/** @typedef {import('../lib/types.js').SessionRecord} SessionRecord */
/** @typedef {import('../lib/types.js').SessionEvent} SessionEvent */
/** @typedef {import('../lib/i18n.js').Key} Key */

/**
 * @param {HTMLElement} main
 * @param {string} id
 * @returns {Promise<() => void>}
 */
export async function renderRecord(main, id) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let gone = false;
  const draw = async () => {
    /** @type {SessionRecord} */
    const r = await get(`/api/sessions/${id}/record`);
    if (gone) return;
    const live = r.status === 'live' || r.status === 'scheduled';
    const focusedAction = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.action : undefined;
    replace(main, ...content(r, id, () => {
      clearTimeout(timer);
      void draw().catch(handleError);
    }));
    if (focusedAction) /** @type {HTMLElement | null} */ (main.querySelector(`[data-action="${focusedAction}"]`))?.focus();
    if (live) timer = setTimeout(() => void draw().catch(handleError), 3_000);
  };
  await draw();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}

/** @param {SessionRecord} r @param {string} id @param {() => void} redraw @returns {HTMLElement[]} */
function content(r, id, redraw) {
  /** @param {Key} label @param {string | HTMLElement} value */
  const fact = (label, value) => [h('dt', { t: label }), h('dd', {}, value)];
  let billable;
  if (r.billable_seconds !== null && r.billable_seconds !== undefined) {
    billable = fact('app.record.billable', h('strong', { class: 'billable', attrs: { 'data-seconds': r.billable_seconds } }, fmtDuration(r.billable_seconds)));
  } else if (typeof r.provisional_seconds === 'number') {
    billable = fact('app.record.provisional', h('span', { class: 'provisional', attrs: { 'data-seconds': r.provisional_seconds } }, fmtDuration(r.provisional_seconds)));
  } else {
    billable = fact('app.record.billable', t('app.record.notyet'));
  }
  const reimbursable = r.billing_class === 'reimbursable';
  const facts = h(
    'dl',
    { class: 'facts card' },
    ...fact('app.record.status', h('span', { t: /** @type {Key} */ (`app.session.status.${r.status}`) })),
    ...fact('app.record.act', `${r.act_code} — AMK ${fmtNumber(r.amk_coefficient)}`),
    ...fact('app.record.billing', h('span', { t: reimbursable ? 'app.billing.reimbursable' : 'app.billing.hn' })),
    ...fact('app.record.rpps', r.kine_rpps),
    ...fact('app.record.started', r.started_at ? fmtDateTime(r.started_at) : '—'),
    ...fact('app.record.ended', r.ended_at ? fmtDateTime(r.ended_at) : '—'),
    ...billable,
    ...(r.finalized_at ? fact('app.record.finalized', fmtDateTime(r.finalized_at)) : []),
  );
  const end = r.status === 'live' ? h('button', { class: 'btn btn-danger', t: 'app.record.end', attrs: { type: 'button', 'data-action': 'end' } }) : null;
  end?.addEventListener('click', async () => {
    try {
      await post(`/api/sessions/${id}/end`);
      refresh();
      redraw();
    } catch (e) {
      if (!handleError(e)) end.after(errorAlert(e));
    }
  });
  return [
    h('p', {}, h('a', { t: 'app.record.back', attrs: { href: '#/sessions' } })),
    h('h1', { t: 'app.record.title' }),
    facts,
    end ?? '',
    h('h2', { t: 'app.record.incidents' }),
    r.incidents.length ? events(r.incidents) : h('p', { class: 'hint', t: 'app.record.incidents.none' }),
    h('h2', { t: 'app.record.events' }),
    events(r.events),
  ].filter((x) => x !== '').map((x) => /** @type {HTMLElement} */ (x));
}

/** @param {SessionEvent[]} list */
function events(list) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table events' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...(/** @type {Key[]} */ (['app.record.event.at', 'app.record.event.who', 'app.record.event.what', 'app.record.event.detail'])).map((k) => h('th', { t: k, attrs: { scope: 'col' } })),
        ),
      ),
      h(
        'tbody',
        {},
        ...list.map((e) =>
          h(
            'tr',
            {},
            h('td', {}, fmtDateTime(e.at)),
            h('td', { t: e.role ? /** @type {Key} */ (`role.${e.role}`) : 'role.none' }),
            h('td', {}, eventKindLabel(e.kind)),
            h('td', {}, e.detail ?? ''),
          ),
        ),
      ),
    ),
  );
}
