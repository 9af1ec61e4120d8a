// Billing ("Facturation"): the télésoin share of a period against the convention cap, the CSV and
// FHIR exports of that period, and the kiné's billing settings (cooperation protocol, usual HN
// price), and when the reminders go to the patient. Downloads go through fetch + Blob so that the
// cookie stays on the same origin.

import { download, get, put } from '../lib/api.js';
import { bind, fmtPercent } from '../lib/i18n.js';
import { h, field, replace } from '../lib/dom.js';
import { currentMonth, eurosInput, parseEuros } from './state.js';
import { clearFieldErrors, handleError, hintedField, localFieldError, showFormError } from './ui.js';
import { remindersForm } from './reach.js';

/** @typedef {import('../lib/types.js').Share} Share */
/** @typedef {import('../lib/types.js').Settings} Settings */
/** @typedef {import('../lib/i18n.js').Key} Key */

/**
 * @param {HTMLElement} main
 * @param {string | null} from YYYY-MM-DD
 * @param {string | null} to YYYY-MM-DD
 */
export async function renderBilling(main, from, to) {
  const month = currentMonth();
  const range = { from: from ?? month.from, to: to ?? month.to };
  /** @type {Settings} */
  const settings = await get('/api/settings');
  /** @type {import('./reach.js').ReachSettings} */
  const reach = await get('/api/reach');

  // The period, the share and the exports.
  const fromInput = h('input', { attrs: { type: 'date', name: 'from', required: true, value: range.from } });
  const toInput = h('input', { attrs: { type: 'date', name: 'to', required: true, value: range.to } });
  const rangeError = h('div', { attrs: { 'aria-live': 'polite' } });
  const rangeForm = h(
    'form',
    { class: 'range-form', attrs: { 'aria-labelledby': 'period-h' } },
    rangeError,
    h('div', { class: 'row' }, field(fromInput, 'app.invoicing.from'), field(toInput, 'app.invoicing.to'), h('button', { class: 'btn btn-secondary', t: 'app.invoicing.show', attrs: { type: 'submit' } })),
  );
  const shareBox = h('div', { class: 'share', attrs: { 'aria-live': 'polite' } });

  const load = async () => {
    clearFieldErrors(rangeForm);
    rangeError.replaceChildren();
    try {
      /** @type {Share} */
      const share = await get(`/api/share?from=${encodeURIComponent(fromInput.value)}&to=${encodeURIComponent(toInput.value)}`);
      range.from = share.from;
      range.to = share.to;
      replace(shareBox, ...shareView(share));
    } catch (e) {
      if (handleError(e)) return;
      shareBox.replaceChildren();
      showFormError(rangeForm, rangeError, e);
    }
  };
  rangeForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void load();
  });

  const exportStatus = h('p', { class: 'hint', attrs: { role: 'status' } });
  const exportError = h('div', { attrs: { 'aria-live': 'polite' } });
  /** @param {'csv' | 'csv_fr' | 'fhir'} format @param {Key} key */
  const exportButton = (format, key) => {
    const b = h('button', { class: 'btn btn-primary', t: key, attrs: { type: 'button', 'data-action': `export-${format}` } });
    b.addEventListener('click', async () => {
      exportError.replaceChildren();
      exportStatus.replaceChildren();
      b.disabled = true;
      try {
        const name = `telesoin-${range.from}-${range.to}${format === 'csv_fr' ? '-fr' : ''}.${format === 'fhir' ? 'fhir.json' : 'csv'}`;
        await download(`/api/exports?from=${encodeURIComponent(range.from)}&to=${encodeURIComponent(range.to)}&format=${format}`, name);
        bind(exportStatus, 'app.invoicing.downloaded');
      } catch (e) {
        if (!handleError(e)) showFormError(rangeForm, exportError, e);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  };

  replace(
    main,
    h('h1', { t: 'app.invoicing.title' }),
    h(
      'section',
      { class: 'card', attrs: { 'aria-labelledby': 'period-h' } },
      h('h2', { t: 'app.invoicing.period', attrs: { id: 'period-h' } }),
      rangeForm,
      h('h3', { t: 'app.invoicing.share' }),
      shareBox,
      h('h3', { t: 'app.invoicing.exports' }),
      h('p', { class: 'hint', t: 'app.invoicing.exports.hint' }),
      exportError,
      h('div', { class: 'row' }, exportButton('csv_fr', 'app.invoicing.csv_fr'), exportButton('csv', 'app.invoicing.csv'), exportButton('fhir', 'app.invoicing.fhir')),
      exportStatus,
    ),
    settingsForm(settings),
    remindersForm(reach),
  );
  await load();
}

/** @param {Share} s @returns {HTMLElement[]} */
export function shareView(s) {
  if (s.total_sessions === 0) return [h('p', { class: 'hint', t: 'app.invoicing.share.none' })];
  const params = { percent: fmtPercent(s.ratio), cap: s.cap_percent };
  const detail = h('p', { t: 'app.invoicing.share.detail', tp: { remote: s.remote_sessions, total: s.total_sessions } });
  if (s.over_cap) {
    return [
      h('div', { class: 'alert share-over', attrs: { 'data-over-cap': 'true' } }, h('p', { class: 'share-line', t: 'app.invoicing.share.over', tp: params }), h('p', { t: 'app.invoicing.share.advice' })),
      detail,
    ];
  }
  if (s.next_exceeds) {
    return [
      h('div', { class: 'alert share-near', attrs: { 'data-over-cap': 'false', 'data-next-exceeds': 'true' } }, h('p', { class: 'share-line', t: 'app.invoicing.share.near', tp: params })),
      detail,
    ];
  }
  return [h('p', { class: 'share-ok share-line', attrs: { 'data-over-cap': 'false' }, t: 'app.invoicing.share.ok', tp: params }), detail];
}

/** The kiné's billing settings. @param {Settings} settings */
function settingsForm(settings) {
  const protocol = h('input', { attrs: { type: 'checkbox', name: 'cooperation_protocol', checked: settings.cooperation_protocol } });
  const price = h('input', { attrs: { type: 'text', name: 'hn_price_cents', inputmode: 'decimal', autocomplete: 'off', spellcheck: 'false', value: eurosInput(settings.hn_price_cents) } });
  const departement = h('input', { attrs: { type: 'text', name: 'practice_departement', inputmode: 'numeric', autocomplete: 'off', size: 6, value: settings.practice_departement ?? '' } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const status = h('p', { class: 'hint', attrs: { role: 'status' } });
  const form = h(
    'form',
    { class: 'card form settings', attrs: { 'aria-labelledby': 'settings-h' } },
    h('h2', { t: 'app.invoicing.settings', attrs: { id: 'settings-h' } }),
    error,
    field(protocol, 'app.invoicing.protocol'),
    hintedField(price, 'app.invoicing.price', 'app.invoicing.price.hint'),
    field(departement, 'app.invoicing.departement'),
    h('button', { class: 'btn btn-primary', t: 'app.invoicing.save', attrs: { type: 'submit', 'data-action': 'save-settings' } }),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    error.replaceChildren();
    status.replaceChildren();
    const cents = price.value.trim() ? parseEuros(price.value) : 0;
    if (cents === null) {
      localFieldError(price, 'app.price.invalid');
      return;
    }
    try {
      /** @type {Settings} */
      const saved = await put('/api/settings', { cooperation_protocol: protocol.checked, hn_price_cents: cents, practice_departement: departement.value.trim() || null });
      protocol.checked = saved.cooperation_protocol;
      departement.value = saved.practice_departement ?? '';
      price.value = eurosInput(saved.hn_price_cents);
      bind(status, 'app.invoicing.saved');
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
    }
  });
  return form;
}
