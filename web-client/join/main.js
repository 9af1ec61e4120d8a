// The patient page, /j#TOKEN. The token sits in the URL fragment, which browsers never send to a
// server. It is read once, kept in sessionStorage (so a reload rejoins), and removed from the
// address bar so that it is not copied, bookmarked or shown over a shoulder.

import { h } from '../lib/dom.js';
import { bind, langSwitch, t, onLangChange, translateTree } from '../lib/i18n.js';
import { runPatientFlow } from '../lib/patient-flow.js';
import { isCode, startFromCode } from './code.js';

const STORAGE_KEY = 'telesoin.join-token';

/** @returns {string | null} */
function takeToken() {
  const fromHash = decodeURIComponent(location.hash.replace(/^#/, '')).trim();
  if (fromHash) {
    try {
      sessionStorage.setItem(STORAGE_KEY, fromHash);
    } catch {
      // Private mode: a reload will then need the link again.
    }
    history.replaceState(null, '', location.pathname);
    return fromHash;
  }
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function main() {
  const root = /** @type {HTMLElement} */ (document.getElementById('main'));
  document.getElementById('lang-slot')?.replaceWith(langSwitch());
  translateTree(document.body);
  const setTitle = () => {
    document.title = t('join.title');
  };
  setTitle();
  onLangChange(setTitle);
  const token = takeToken();
  if (!token) {
    root.replaceChildren(h('div', { class: 'screen', attrs: { 'data-screen': 'notoken' } }, h('h1', { t: 'join.notoken.title' }), bind(h('p', { class: 'lead' }), 'join.notoken.text')));
    return;
  }
  // A short link (/j#CODE) is exchanged for its token first; a token link joins as it is.
  if (isCode(token)) void startFromCode(root, token);
  else runPatientFlow(root, { token });
}

// A new link pasted into a tab already on /j changes only the fragment: no navigation happens.
// Take the new token and start over with it (the page reload drops the old call cleanly).
window.addEventListener('hashchange', () => {
  if (!location.hash.replace(/^#/, '').trim()) return;
  takeToken();
  location.reload();
});

main();
