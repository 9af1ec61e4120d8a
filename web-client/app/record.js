// The session record: what billing and the patient file rely on (act, class and why, billable
// duration, technical incidents, events), the compte rendu (versioned: an amendment adds a version
// and keeps the earlier ones), and the documents (report PDF, HN invoice PDF). Refreshed while the
// session is live.

import { get, post } from '../lib/api.js';
import { append, h, field, replace } from '../lib/dom.js';
import { bind, eventKindLabel, fmtDateTime, fmtDuration, t } from '../lib/i18n.js';
import { billingBadge, clearFieldErrors, errorAlert, handleError, localFieldError, priceBadge, refresh, showFormError } from './ui.js';

/** @typedef {import('../lib/types.js').SessionRecord} SessionRecord */
/** @typedef {import('../lib/types.js').SessionEvent} SessionEvent */
/** @typedef {import('../lib/types.js').Session} Session */
/** @typedef {import('../lib/types.js').Report} Report */
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
    /** @type {[SessionRecord, Session]} */
    const [r, session] = await Promise.all([get(`/api/sessions/${id}/record`), get(`/api/sessions/${id}`)]);
    /** @type {Report | null} */
    const report = r.finalized_at ? await get(`/api/sessions/${id}/report`) : null;
    if (gone) return;
    // Until the duration is closed the record still moves: poll it.
    const moving = !r.finalized_at && r.status !== 'cancelled';
    const focusedAction = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.action : undefined;
    replace(
      main,
      ...content(r, session, report, id, () => {
        clearTimeout(timer);
        void draw().catch(handleError);
      }),
    );
    if (focusedAction) /** @type {HTMLElement | null} */ (main.querySelector(`[data-action="${focusedAction}"]`))?.focus();
    if (moving) timer = setTimeout(() => void draw().catch(handleError), 3_000);
  };
  await draw();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}

/**
 * @param {SessionRecord} r
 * @param {Session} session
 * @param {Report | null} report
 * @param {string} id
 * @param {() => void} redraw
 * @returns {HTMLElement[]}
 */
function content(r, session, report, id, redraw) {
  /** @param {Key} label @param {string | HTMLElement} value */
  const fact = (label, value) => [h('dt', { t: label }), h('dd', {}, value)];
  let billable;
  if (r.billable_seconds !== null && r.billable_seconds !== undefined) {
    billable = fact('app.record.billable', h('strong', { class: 'billable', attrs: { 'data-seconds': r.billable_seconds } }, fmtDuration(r.billable_seconds)));
  } else if (typeof r.provisional_seconds === 'number' && r.status === 'live') {
    billable = fact('app.record.provisional', h('span', { class: 'provisional', attrs: { 'data-seconds': r.provisional_seconds } }, fmtDuration(r.provisional_seconds)));
  } else {
    billable = fact('app.record.billable', t('app.record.notyet'));
  }
  const facts = h(
    'dl',
    { class: 'facts card' },
    ...fact('app.record.patient', h('a', { attrs: { href: `#/patients/${session.patient}` } }, session.patient_name)),
    ...fact('app.record.status', h('span', { attrs: { 'data-outcome': r.outcome ?? '' }, t: /** @type {Key} */ (r.outcome === 'not_held' ? 'app.session.outcome.not_held' : `app.session.status.${r.status}`) })),
    ...billable,
    ...fact('app.record.act', h('span', {}, `${r.act_code} `, priceBadge(r))),
    ...fact('app.record.billing', billingBadge(r.billing_class, session.billing_reason, true)),
    ...fact('app.record.when', fmtDateTime(session.starts_at)),
    ...fact('app.record.started', r.started_at ? fmtDateTime(r.started_at) : '—'),
    ...fact('app.record.ended', r.ended_at ? fmtDateTime(r.ended_at) : '—'),
    ...(r.finalized_at ? fact('app.record.finalized', fmtDateTime(r.finalized_at)) : []),
    ...fact('app.record.rpps', r.kine_rpps),
    // Who consented and who was next to the patient, in words (French, as in the record).
    ...(r.consent ? fact('app.record.consent', h('span', { class: 'record-consent' }, r.consent)) : []),
    ...(r.attestations?.length ? fact('app.record.presence', h('span', { class: 'record-presence' }, r.attestations.map((a) => a.words).join(' ; '))) : []),
    ...(r.price_accepted_at ? fact('app.record.price_accepted', fmtDateTime(r.price_accepted_at)) : []),
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
  const incidents = h(
    'section',
    { attrs: { 'aria-labelledby': 'incidents-h' } },
    h('h2', { t: 'app.record.incidents', attrs: { id: 'incidents-h' } }),
    r.incidents.length
      ? h('div', {}, h('p', { class: 'alert incidents-alert', t: 'app.record.incidents.count', tp: { count: r.incidents.length } }), events(r.incidents, 'incidents'))
      : h('p', { class: 'hint incidents-none', t: 'app.record.incidents.none' }),
  );
  return [
    h('p', {}, h('a', { t: 'app.record.back', attrs: { href: '#/sessions' } })),
    h('h1', { t: 'app.record.title' }),
    facts,
    end,
    incidents,
    reportSection(r, report, id),
    documents(r, id),
    h('section', { attrs: { 'aria-labelledby': 'events-h' } }, h('h2', { t: 'app.record.events', attrs: { id: 'events-h' } }), events(r.events, 'events')),
  ].filter((x) => x !== null);
}

/**
 * The compte rendu: the versions (current first) and the editor (a first text, or an amendment).
 * @param {SessionRecord} r
 * @param {Report | null} report
 * @param {string} id
 */
function reportSection(r, report, id) {
  const section = h('section', { class: 'card report', attrs: { 'aria-labelledby': 'report-h' } });
  const heading = h('h2', { t: 'app.record.report', attrs: { id: 'report-h' } });
  if (!r.finalized_at || !report) {
    replace(section, heading, h('p', { class: 'hint', t: 'app.record.report.notyet' }));
    return section;
  }
  const status = h('p', { class: 'report-status', attrs: { role: 'status' } });
  /** @param {Report} rep */
  const fill = (rep) => {
    const versions = [...rep.versions].reverse();
    const current = versions[0];
    const has = versions.length > 0;
    const text = h('textarea', { class: 'report-text', attrs: { name: 'text', rows: 8, maxlength: 20000 } });
    const error = h('div', { attrs: { 'aria-live': 'polite' } });
    const save = h('button', { class: 'btn btn-primary', t: has ? 'app.record.report.amend.save' : 'app.record.report.save', attrs: { type: 'submit', 'data-action': 'save-report' } });
    const form = h(
      'form',
      { class: 'report-form', attrs: { 'aria-labelledby': has ? undefined : 'report-h' } },
      error,
      field(text, has ? 'app.record.report.amend.text' : 'app.record.report.text'),
      has ? h('p', { class: 'hint', t: 'app.record.report.amend.hint' }) : null,
      h('div', { class: 'row' }, save),
    );
    /** @type {HTMLButtonElement | null} */
    let amend = null;
    if (has) {
      form.hidden = true;
      const opener = h('button', { class: 'btn btn-secondary', t: 'app.record.report.amend', attrs: { type: 'button', 'data-action': 'amend-report', 'aria-expanded': 'false' } });
      opener.addEventListener('click', () => {
        form.hidden = false;
        opener.hidden = true;
        opener.setAttribute('aria-expanded', 'true');
        text.value = current.text;
        text.focus();
      });
      amend = opener;
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      error.replaceChildren();
      if (!text.value.trim()) {
        localFieldError(text, 'app.record.report.required');
        return;
      }
      save.disabled = true;
      try {
        /** @type {Report} */
        const next = await post(`/api/sessions/${id}/report`, { text: text.value });
        fill(next);
        const last = next.versions[next.versions.length - 1];
        bind(status, 'app.record.report.saved', { version: last.version });
        status.focus();
      } catch (err) {
        save.disabled = false;
        if (!handleError(err)) showFormError(form, error, err);
      }
    });
    replace(
      section,
      heading,
      status,
      has
        ? h(
            'ol',
            { class: 'versions', ta: { 'aria-label': 'app.record.report.versions' } },
            ...versions.map((v, i) =>
              h(
                'li',
                { class: i === 0 ? 'version version-current' : 'version version-old', attrs: { 'data-version': v.version } },
                h(
                  'p',
                  { class: 'version-head' },
                  h('strong', { t: 'app.record.report.version', tp: { version: v.version } }),
                  ' — ',
                  h('span', { t: 'app.record.report.written', tp: { date: fmtDateTime(v.written_at) } }),
                  ' ',
                  h('span', { class: `badge ${i === 0 ? 'badge-ok' : ''}`, t: i === 0 ? 'app.record.report.current' : 'app.record.report.previous' }),
                ),
                h('p', { class: 'version-text' }, v.text),
              ),
            ),
          )
        : h('p', { class: 'hint', t: 'app.record.report.none' }),
      amend,
      form,
    );
  };
  status.tabIndex = -1;
  fill(report);
  return section;
}

/** The report PDF (décret 2021-707 trace) and, for an HN session, the invoice. @param {SessionRecord} r @param {string} id */
function documents(r, id) {
  const section = h('section', { class: 'card docs', attrs: { 'aria-labelledby': 'docs-h' } }, h('h2', { t: 'app.record.docs', attrs: { id: 'docs-h' } }));
  if (!r.finalized_at) {
    section.append(h('p', { class: 'hint', t: 'app.record.docs.notyet' }));
    return section;
  }
  // A session never held has no documents: no act to trace, nothing to invoice.
  const held = r.outcome !== 'not_held';
  const invoiced = held && r.billing_class === 'hn';
  /** @param {Key} key @param {string} href @param {string} doc */
  const link = (key, href, doc) =>
    h('a', { class: 'btn btn-secondary', attrs: { href, target: '_blank', rel: 'noopener', 'data-doc': doc } }, h('span', { t: key }), ' ', h('span', { class: 'visually-hidden', t: 'app.record.docs.newtab' }));
  append(section, [
    h('div', { class: 'row' }, held ? link('app.record.docs.report', `/api/sessions/${id}/report.pdf`, 'report') : null, invoiced ? link('app.record.docs.invoice', `/api/sessions/${id}/invoice.pdf`, 'invoice') : null),
    h('p', { class: 'hint', t: 'app.record.docs.trace' }),
    invoiced ? h('p', { class: 'hint', t: 'app.record.docs.invoice.hint' }) : null,
  ]);
  return section;
}

/** @param {SessionEvent[]} list @param {string} cls */
function events(list, cls) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: `table events ${cls}` },
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
