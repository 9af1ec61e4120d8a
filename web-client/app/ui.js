// Small pieces the dashboard's pages share: error display, the 401 handler, a live refresh.

import { ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { bind, bindPair } from '../lib/i18n.js';

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
