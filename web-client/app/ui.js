// Small pieces the dashboard's pages share: error display, the 401 handler, a live refresh.

import { ApiError } from '../lib/api.js';
import { field, h, uid } from '../lib/dom.js';
import { bind, bindPair, fmtEuros, fmtNumber } from '../lib/i18n.js';

/** @typedef {import('../lib/i18n.js').Key} Key */

const hooks = {
  unauthorized: () => {},
  refresh: () => {},
};

/** @param {{unauthorized: () => void, refresh: () => void}} h */
export function setHooks(h) {
  hooks.unauthorized = h.unauthorized;
  hooks.refresh = h.refresh;
}

/** An expired cookie anywhere sends the kiné back to the login form. @param {unknown} e @returns {boolean} handled */
export function handleError(e) {
  if (e instanceof ApiError && e.status === 401) {
    hooks.unauthorized();
    return true;
  }
  return false;
}

/** @param {unknown} e @returns {HTMLElement} an alert with the server's words, French or English */
export function errorAlert(e) {
  if (e instanceof ApiError) return refusalAlert(e.refusal);
  return bind(h('p', { class: 'alert alert-error', attrs: { role: 'alert' } }), 'common.error.generic');
}

/** @param {import('../lib/types.js').Refusal} refusal */
export function refusalAlert(refusal) {
  return bindPair(h('p', { class: 'alert alert-error', attrs: { role: 'alert', 'data-code': refusal.code } }), refusal.message_fr, refusal.message_en);
}

/** Asks for the live state now rather than at the next poll. */
export function refresh() {
  hooks.refresh();
}

/**
 * A labelled field with a hint under it, tied to the control by aria-describedby.
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {Key} label
 * @param {Key} hint
 * @returns {HTMLDivElement}
 */
export function hintedField(control, label, hint) {
  const wrap = field(control, label);
  const id = uid('hint');
  wrap.append(h('p', { class: 'hint field-hint', t: hint, attrs: { id } }));
  control.setAttribute('aria-describedby', id);
  control.dataset.describedby = id;
  return wrap;
}

/** Removes the messages `fieldError` put in a form. @param {ParentNode} form */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll('.field-error[data-for]')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid="true"]')) {
    el.removeAttribute('aria-invalid');
    const base = el instanceof HTMLElement ? el.dataset.describedby : undefined;
    if (base) el.setAttribute('aria-describedby', base);
    else el.removeAttribute('aria-describedby');
  }
}

/**
 * Puts a message right under a form control, marks it invalid and moves focus to it.
 * @param {HTMLElement} control
 * @param {HTMLElement} message a `.field-error` element
 */
function attachFieldError(control, message) {
  message.id = uid('err');
  message.setAttribute('data-for', control.getAttribute('name') ?? '');
  (control.closest('.field') ?? control).append(message);
  control.setAttribute('aria-invalid', 'true');
  control.setAttribute('aria-describedby', [control.dataset.describedby, message.id].filter(Boolean).join(' '));
  control.focus();
}

/**
 * A message of ours (not the server's) under a control. @param {HTMLElement} control @param {Key} key
 */
export function localFieldError(control, key) {
  attachFieldError(control, bind(h('p', { class: 'field-error', attrs: { role: 'alert' } }), key));
}

/**
 * Shows a failure where the kiné looks: under the control the server names in `details.field`
 * (matched by the control's name), else as an alert in `fallback`.
 * @param {ParentNode} form
 * @param {HTMLElement} fallback
 * @param {unknown} e
 */
export function showFormError(form, fallback, e) {
  clearFieldErrors(form);
  fallback.replaceChildren();
  const name = e instanceof ApiError ? fieldOf(e.refusal) : null;
  const control = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (e instanceof ApiError && control instanceof HTMLElement) {
    const r = e.refusal;
    const message = h('p', { class: 'field-error', attrs: { role: 'alert', 'data-code': r.code } });
    // "Invalid data: check the form" says nothing the field does not: name the field instead.
    const label = control.id ? document.querySelector(`label[for="${CSS.escape(control.id)}"]`)?.textContent?.trim() : '';
    const d = /** @type {Record<string, unknown>} */ (typeof r.details === 'object' && r.details !== null ? r.details : {});
    // A refusal that says what is wrong in both languages is shown as it says it.
    if (typeof d.problem_fr === 'string' && typeof d.problem === 'string') bindPair(message, label ? `${label} : ${d.problem_fr}` : d.problem_fr, label ? `${label}: ${d.problem}` : d.problem);
    else if (r.code === 'invalid_input' && label) bind(message, 'app.field.invalid', { field: label });
    else bindPair(message, r.message_fr, r.message_en);
    attachFieldError(control, message);
  } else {
    fallback.append(errorAlert(e));
  }
}

/** @param {import('../lib/types.js').Refusal} r @returns {string | null} */
function fieldOf(r) {
  const d = r.details;
  if (typeof d === 'object' && d !== null && 'field' in d && typeof d.field === 'string') return d.field;
  return null;
}

/**
 * The class of a session as a badge, with the reason as text for screen readers (and visible
 * when `visible` is set).
 * @param {string} billingClass
 * @param {import('../lib/types.js').BillingReason | null | undefined} reason
 * @param {boolean} [visible]
 * @returns {HTMLElement}
 */
export function billingBadge(billingClass, reason, visible = false) {
  const reimbursable = billingClass === 'reimbursable';
  const badge = h('span', { class: `badge ${reimbursable ? 'badge-ok' : 'badge-warn'}`, t: reimbursable ? 'app.billing.reimbursable' : 'app.billing.hn', attrs: { 'data-class': billingClass } });
  if (!reason) return h('span', { class: 'billing' }, badge);
  const why = bindPair(h(visible ? 'p' : 'span', { class: visible ? 'reason' : 'visually-hidden', attrs: { 'data-reason': reason.code } }), reason.message_fr, reason.message_en);
  return h(visible ? 'div' : 'span', { class: 'billing' }, badge, visible ? '' : ' — ', why);
}

/**
 * The price of a session on its day: letter, coefficient, value of the letter, amount.
 * @param {{key_letter?: string | null, coefficient?: string | null, key_letter_value_cents?: number | null, amount_cents?: number | null, amk_coefficient: number}} s
 */
export function priceBadge(s) {
  if (s.key_letter && s.coefficient && typeof s.key_letter_value_cents === 'number' && typeof s.amount_cents === 'number') {
    return h('span', {
      class: 'badge price',
      attrs: { 'data-letter': s.key_letter },
      t: 'app.session.price',
      tp: { letter: s.key_letter, coef: fmtNumber(Number(s.coefficient)), value: fmtEuros(s.key_letter_value_cents), amount: fmtEuros(s.amount_cents) },
    });
  }
  if (typeof s.amount_cents === 'number') return h('span', { class: 'badge price', t: 'app.session.price.hn', tp: { amount: fmtEuros(s.amount_cents) } });
  return h('span', { class: 'badge', t: 'app.session.amk', tp: { coef: fmtNumber(s.amk_coefficient) } });
}
