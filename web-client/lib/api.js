// JSON over fetch, same origin. Kiné routes ride on the HttpOnly session cookie; a join token only
// ever travels in a POST body (never in a URL, so never in an access log or a Referer).

import { both } from './i18n.js';

/** @typedef {import('./types.js').Refusal} Refusal */

/** @param {string} code @param {import('./i18n.js').Key} key @returns {Refusal} */
function localRefusal(code, key) {
  const { fr, en } = both(key);
  return { code, message_fr: fr, message_en: en };
}

/** A refusal from the server (4xx with {code, message_fr, message_en}) or a network failure. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the network failed
   * @param {Refusal} refusal
   */
  constructor(status, refusal) {
    super(refusal.message_en || refusal.code);
    this.status = status;
    this.refusal = refusal;
  }

  get code() {
    return this.refusal.code;
  }
}

/** @param {unknown} v @returns {v is Refusal} */
function isRefusal(v) {
  return typeof v === 'object' && v !== null && 'code' in v && 'message_fr' in v;
}

/**
 * The session's CSRF token: the login and /api/me hand it over in their X-CSRF-Token header (kept
 * in memory only, never in a cookie); sent back on every state-changing request.
 */
let csrfToken = '';

/**
 * @template T
 * @param {'GET' | 'POST' | 'PUT'} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<T>}
 */
export async function api(method, path, body) {
  /** @type {Response} */
  let res;
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, localRefusal('network', 'common.error.network'));
  }
  csrfToken = res.headers.get('X-CSRF-Token') ?? csrfToken;
  const text = await res.text();
  /** @type {unknown} */
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) throw refusalOf(res.status, data);
  return /** @type {T} */ (data);
}

/** @param {number} status @param {unknown} data @returns {ApiError} */
function refusalOf(status, data) {
  if (isRefusal(data)) return new ApiError(status, data);
  return new ApiError(status, localRefusal(`http_${status}`, 'common.error.generic'));
}

/**
 * Fetches a document with the session cookie and hands it to the browser as a download: an
 * object URL on a Blob, so nothing goes through a third party and the cookie stays same-origin.
 * @param {string} path
 * @param {string} filename
 * @returns {Promise<void>}
 */
export async function download(path, filename) {
  /** @type {Response} */
  let res;
  try {
    res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, localRefusal('network', 'common.error.network'));
  }
  if (!res.ok) {
    /** @type {unknown} */
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    throw refusalOf(res.status, data);
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // Give the browser time to start the download before the URL goes away.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** @template T @param {string} path @returns {Promise<T>} */
export const get = (path) => api('GET', path);
/** @template T @param {string} path @param {unknown} [body] @returns {Promise<T>} */
export const post = (path, body) => api('POST', path, body ?? {});
/** @template T @param {string} path @param {unknown} body @returns {Promise<T>} */
export const put = (path, body) => api('PUT', path, body);
