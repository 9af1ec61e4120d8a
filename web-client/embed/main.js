// The iframe page of an embedded call (/embed/). The platform's page hands it the join token by
// postMessage (never in a URL), and it reports the call's progress back to that page only: every
// message names the platform's exact origin, taken from the allowlist (GET /api/embed/config).
//
// Handshake: this page posts {source:'telesoin', event:'ready'} to its parent (addressed to each
// allowlisted origin in turn, so only an allowlisted parent can receive it); the parent answers
// {type:'telesoin:init', token, lang?}. Then come waiting, admitted, connected, reconnecting,
// ended {billable_seconds} and refused {code}.

import { get } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { langSwitch, setLang, translateTree, t, onLangChange } from '../lib/i18n.js';
import { runPatientFlow } from '../lib/patient-flow.js';

/** @param {string} origin @param {Record<string, unknown>} msg */
function postTo(origin, msg) {
  try {
    window.parent.postMessage({ source: 'telesoin', ...msg }, origin);
  } catch {
    // An allowlist entry that is not an origin: skip it.
  }
}

async function main() {
  const root = /** @type {HTMLElement} */ (document.getElementById('main'));
  document.getElementById('lang-slot')?.replaceWith(langSwitch());
  translateTree(document.body);
  const setTitle = () => {
    document.title = t('embed.title');
  };
  setTitle();
  onLangChange(setTitle);
  root.replaceChildren(h('div', { class: 'screen', attrs: { 'data-screen': 'embed-wait' } }, h('p', { class: 'lead', attrs: { role: 'status' }, t: 'embed.waiting_token' })));

  /** @type {string[]} */
  let origins = [];
  try {
    /** @type {{origins?: string[]}} */
    const config = await get('/api/embed/config');
    origins = config.origins ?? [];
  } catch {
    origins = [];
  }
  if (window.parent === window) return;

  /** @type {string | null} */
  let parentOrigin = null;
  window.addEventListener('message', (e) => {
    if (parentOrigin || e.source !== window.parent || !origins.includes(e.origin)) return;
    const data = e.data;
    if (!data || data.type !== 'telesoin:init' || typeof data.token !== 'string' || !data.token) return;
    parentOrigin = e.origin;
    if (data.lang === 'fr' || data.lang === 'en') setLang(data.lang);
    const origin = parentOrigin;
    runPatientFlow(root, {
      token: data.token,
      report: (event, detail) => postTo(origin, { event, ...(detail ?? {}) }),
    });
  });
  for (const origin of origins) postTo(origin, { event: 'ready' });
}

void main();
