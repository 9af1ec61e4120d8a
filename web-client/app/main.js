// The kiné dashboard, /app: login, today's sessions with their live state, patients, scheduling,
// the call, the session record with its compte rendu, billing (share, exports, settings). Routes live in the fragment (#/sessions, #/patients/ID, …): no
// server round trip, and nothing secret ever goes in them.

import { get, post } from '../lib/api.js';
import { audioContext, playChime } from '../lib/devices.js';
import { h, field, focusHeading, replace } from '../lib/dom.js';
import { langSwitch, onLangChange, t, translateTree } from '../lib/i18n.js';
import { renderBilling } from './billing.js';
import { openCall, activeSessionId } from './call.js';
import { renderPatient, renderPatients } from './patients.js';
import { renderRecord } from './record.js';
import { renderLink, renderSchedule, renderSessions, updateSessions } from './sessions.js';
import { state, ymd } from './state.js';
import { errorAlert, handleError, refusalAlert, setHooks } from './ui.js';

/** @typedef {import('../lib/types.js').Session} Session */
/** @typedef {import('../lib/types.js').Kine} Kine */

const POLL_MS = 2_500;
const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const announce = /** @type {HTMLElement} */ (document.getElementById('announce'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const who = /** @type {HTMLElement} */ (document.getElementById('who'));

/** Participants already announced, so the chime sounds once per arrival. */
const announced = new Set();
/** @type {ReturnType<typeof setTimeout> | undefined} */
let pollTimer;
let waitingCount = 0;
/** Cleanup of the current route (timers). */
let leaveRoute = () => {};

function setTitle() {
  document.title = waitingCount > 0 ? `${t('app.waiting.title', { count: waitingCount })} — ${t('app.title')}` : t('app.title');
}

function showLogin() {
  clearTimeout(pollTimer);
  nav.hidden = true;
  who.textContent = '';
  document.getElementById('logout-btn')?.remove();
  const email = h('input', { attrs: { type: 'email', name: 'email', autocomplete: 'username', required: true } });
  const password = h('input', { attrs: { type: 'password', name: 'password', autocomplete: 'current-password', required: true } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const oidcSlot = h('div', { class: 'login-oidc' });
  const form = h(
    'form',
    { class: 'card login-card' },
    h('h1', { t: 'app.login.title' }),
    error,
    oidcSlot,
    field(email, 'app.login.email'),
    field(password, 'app.login.password'),
    h('button', { class: 'btn btn-primary btn-block', t: 'app.login.submit', attrs: { type: 'submit' } }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    // The click unlocks sound for the "a patient waits" chime.
    audioContext();
    try {
      state.me = await post('/api/login', { email: email.value.trim(), password: password.value });
      await startApp();
    } catch (err) {
      replace(error, errorAlert(err));
      password.select();
    }
  });
  replace(main, h('div', { class: 'login' }, form));
  focusHeading(main);
  void loginOptions(form, oidcSlot, error);
}

/**
 * The OpenID Connect button (Pro Santé Connect), the password form only when enabled, and the
 * words of a refused OpenID login (`?login_error=CODE`, set by the server's redirect).
 * @param {HTMLElement} form @param {HTMLElement} slot @param {HTMLElement} error
 */
async function loginOptions(form, slot, error) {
  const params = new URLSearchParams(location.search);
  const code = params.get('login_error');
  /** @type {import('../lib/types.js').LoginOptions} */
  let options;
  try {
    options = await get(`/api/login/options${code ? `?error=${encodeURIComponent(code)}` : ''}`);
  } catch {
    return;
  }
  if (options.error) replace(error, refusalAlert(options.error));
  if (code) history.replaceState(null, '', location.pathname + location.hash);
  if (options.oidc) {
    const start = options.oidc.start;
    replace(
      slot,
      h('a', { class: 'btn btn-primary btn-block', t: 'app.login.oidc', tp: { provider: options.oidc.label }, attrs: { href: start, 'data-oidc': '' } }),
      h('p', { class: 'hint', t: 'app.login.oidc.hint' }),
      options.password ? h('p', { class: 'login-or', t: 'app.login.or' }) : null,
    );
  }
  if (!options.password) {
    for (const el of form.querySelectorAll('.field, button[type=submit]')) el.remove();
  }
}

async function startApp() {
  const me = /** @type {Kine} */ (state.me);
  who.textContent = me.name;
  if (!state.acts.length) {
    try {
      state.acts = await get('/api/acts');
    } catch (e) {
      if (handleError(e)) return;
    }
  }
  replace(
    nav,
    h('a', { class: 'nav-link', t: 'app.nav.today', attrs: { href: '#/sessions', 'data-nav': 'sessions' } }),
    h('a', { class: 'nav-link', t: 'app.nav.patients', attrs: { href: '#/patients', 'data-nav': 'patients' } }),
    h('a', { class: 'nav-link', t: 'app.nav.billing', attrs: { href: '#/billing', 'data-nav': 'billing' } }),
  );
  nav.setAttribute('aria-label', t('app.nav'));
  nav.hidden = false;
  if (!document.getElementById('logout-btn')) {
    const logout = h('button', { class: 'btn btn-secondary btn-small', t: 'app.logout', attrs: { type: 'button', id: 'logout-btn' } });
    logout.addEventListener('click', async () => {
      try {
        /** @type {{end_session_url?: string} | null} */
        const out = await post('/api/logout');
        // Logged in through the provider: end the session there too (it comes back to /app/).
        if (out?.end_session_url) {
          location.assign(out.end_session_url);
          return;
        }
      } catch {
        // The cookie is gone or the server is away: the login form is the right place either way.
      }
      state.me = null;
      location.hash = '';
      showLogin();
    });
    document.getElementById('logout-slot')?.append(logout);
  }
  route();
  void poll();
}

/** Today's sessions, every few seconds: who waits, who is in a call. */
async function poll() {
  clearTimeout(pollTimer);
  if (!state.me) return;
  try {
    /** @type {Session[]} */
    const sessions = await get(`/api/sessions?day=${ymd(new Date())}`);
    onSessions(sessions);
  } catch (e) {
    if (handleError(e)) return;
  }
  pollTimer = setTimeout(() => void poll(), POLL_MS);
}

/** @param {Session[]} sessions */
function onSessions(sessions) {
  updateSessions(sessions);
  const waiting = [];
  for (const s of sessions) {
    for (const p of s.live ?? []) {
      if (p.role !== 'kine' && p.connected && !p.admitted) waiting.push({ session: s, participant: p.participant });
    }
  }
  waitingCount = waiting.length;
  setTitle();
  const fresh = waiting.filter((w) => !announced.has(w.participant));
  for (const w of fresh) announced.add(w.participant);
  if (fresh.length) playChime();
  const items = waiting
    .filter((w) => w.session.id !== activeSessionId())
    .map((w) => {
      const admit = h('button', { class: 'btn btn-primary btn-small', t: 'app.action.admit', attrs: { type: 'button', 'data-admit': w.participant } });
      admit.addEventListener('click', () => void openCall(w.session, w.participant));
      return h('div', { class: 'announce-item' }, h('span', { t: 'app.waiting.announce', tp: { name: w.session.patient_name } }), admit);
    });
  // Rebuild only when the set changed, so that a focused button is not pulled away every poll.
  const key = waiting.map((w) => w.participant).join(',') + `|${activeSessionId()}`;
  if (announce.dataset.key !== key) {
    announce.dataset.key = key;
    replace(announce, ...items);
  }
}

function route() {
  leaveRoute();
  leaveRoute = () => {};
  if (!state.me) {
    showLogin();
    return;
  }
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query ?? '');
  const parts = path.split('/').filter(Boolean);
  const section = parts[0] === 'patients' || parts[0] === 'billing' ? parts[0] : 'sessions';
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('data-nav') === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  /** @type {Promise<(() => void) | void>} */
  let rendering;
  switch (parts[0]) {
    case 'patients':
      rendering = parts[1] ? renderPatient(main, parts[1]) : renderPatients(main);
      break;
    case 'schedule':
      rendering = renderSchedule(main, params.get('patient'));
      break;
    case 'link':
      rendering = renderLink(main, parts[1] ?? '');
      break;
    case 'billing':
      rendering = renderBilling(main, params.get('from'), params.get('to'));
      break;
    case 'record':
      rendering = renderRecord(main, parts[1] ?? '');
      break;
    default:
      rendering = renderSessions(main, params.get('day') ?? ymd(new Date()));
  }
  rendering
    .then((cleanup) => {
      if (cleanup) leaveRoute = cleanup;
      focusHeading(main);
    })
    .catch((e) => {
      if (!handleError(e)) replace(main, errorAlert(e));
    });
}

async function boot() {
  // Browsers only let a page play sound after a gesture: unlock the chime at the first one.
  const unlock = () => audioContext();
  document.addEventListener('pointerdown', unlock, { once: true });
  document.addEventListener('keydown', unlock, { once: true });
  document.getElementById('lang-slot')?.replaceWith(langSwitch());
  translateTree(document.body);
  setTitle();
  onLangChange(() => {
    setTitle();
    nav.setAttribute('aria-label', t('app.nav'));
    // Dates and numbers are formatted at render time: draw the page again (the call layer stays).
    if (state.me) route();
  });
  window.addEventListener('hashchange', route);
  try {
    state.me = await get('/api/me');
  } catch (e) {
    if (!handleError(e)) replace(main, errorAlert(e));
    return;
  }
  await startApp();
}

setHooks({
  unauthorized: () => {
    state.me = null;
    showLogin();
  },
  refresh: () => void poll(),
});

void boot();
