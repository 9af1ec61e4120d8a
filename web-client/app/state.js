// What the dashboard's modules share: the logged-in kiné, the act catalogue, minted links.

/** @typedef {import('../lib/types.js').Kine} Kine */
/** @typedef {import('../lib/types.js').Act} Act */
/** @typedef {import('../lib/types.js').Link} Link */

export const state = {
  /** @type {Kine | null} */
  me: null,
  /** @type {Act[]} */
  acts: [],
  /** @type {Map<string, Link>} the last patient link minted per session, to show it again */
  links: new Map(),
};

/** @param {Date} d @returns {string} YYYY-MM-DD in local time */
export function ymd(d) {
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** @param {string} birth YYYY-MM-DD @param {Date} [on] @returns {number} age in whole years */
export function ageOn(birth, on = new Date()) {
  const [y, m, d] = birth.split('-').map(Number);
  let age = on.getFullYear() - y;
  if (on.getMonth() + 1 < m || (on.getMonth() + 1 === m && on.getDate() < d)) age -= 1;
  return age;
}

/** Navigates within the dashboard. @param {string} path e.g. "/patients/ID" */
export function go(path) {
  location.hash = `#${path}`;
}

/**
 * Euros as a kiné types them ("30", "32,50", "32.5") to cents. The sign is kept so that the server,
 * the one judge of a valid price, can say what is wrong.
 * @param {string} text
 * @returns {number | null} cents, or null when it is not a number of euros
 */
export function parseEuros(text) {
  const m = /^(-?)(\d{1,7})(?:[.,](\d{1,2}))?$/.exec(text.trim().replace(/\s|€/g, ''));
  if (!m) return null;
  const cents = Number(m[2]) * 100 + Number((m[3] ?? '0').padEnd(2, '0'));
  return m[1] ? -cents : cents;
}

/** @param {number} cents @returns {string} euros to put back in a text field, e.g. "32,50" */
export function eurosInput(cents) {
  const abs = Math.abs(cents);
  const s = `${Math.floor(abs / 100)}${abs % 100 ? `,${String(abs % 100).padStart(2, '0')}` : ''}`;
  return cents < 0 ? `-${s}` : s;
}

/** @returns {{from: string, to: string}} the first and last day of the current month */
export function currentMonth(now = new Date()) {
  return { from: ymd(new Date(now.getFullYear(), now.getMonth(), 1)), to: ymd(new Date(now.getFullYear(), now.getMonth() + 1, 0)) };
}
