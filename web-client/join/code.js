// Short links, /j#CODE: the page exchanges the code (in a POST body, never a URL) for the join
// token of the link it stands for. Before the window opens, the patient sees when the session
// is and may try the camera and sound; the page turns into the join screen by itself at the
// opening, on the server's clock (see before.js).

import { post, ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { bind, bindPair } from '../lib/i18n.js';
import { runPatientFlow } from '../lib/patient-flow.js';
import { waitForWindow } from './before.js';

/**
 * @typedef {object} JoinCode
 * @property {string} token
 * @property {string} session
 * @property {string} kine_name
 * @property {string} starts_at
 * @property {string} window_start
 * @property {string} window_end
 * @property {string} server_now
 */

/** A code is 22 base64url characters; a token is a JWT (dots, much longer). @param {string} s */
export function isCode(s) {
  return /^[A-Za-z0-9_-]{22}$/.test(s);
}

/**
 * @param {HTMLElement} root
 * @param {string} code
 */
export async function startFromCode(root, code) {
  root.replaceChildren(h('div', { class: 'screen', attrs: { 'data-screen': 'loading' } }, h('p', { class: 'lead', attrs: { role: 'status' }, t: 'common.loading' })));
  /** @type {JoinCode} */
  let info;
  try {
    info = await post('/api/join-code', { code });
  } catch (e) {
    const message = h('p', { class: 'lead', attrs: { role: 'alert' } });
    if (e instanceof ApiError) bindPair(message, e.refusal.message_fr, e.refusal.message_en);
    else bind(message, 'common.error.network');
    root.replaceChildren(h('div', { class: 'screen', attrs: { 'data-screen': 'refused', 'data-code': e instanceof ApiError ? e.refusal.code : 'network' } }, h('h1', { t: 'join.refused.title' }), message));
    return;
  }
  // The page counts on the server's clock: a phone's may be minutes off.
  const offset = Date.parse(info.server_now) - Date.now();
  const opensAt = Date.parse(info.window_start);
  const start = () => runPatientFlow(root, { token: info.token });
  if (Date.now() + offset >= opensAt) start();
  else waitForWindow(root, { kineName: info.kine_name, startsAt: info.starts_at, opensAt, offset }, start);
}
