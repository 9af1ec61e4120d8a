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
