// When a refused join can be tried again: the server's `details.retry_after_seconds` of a
// `rejoin_too_frequent` refusal, and the countdown to it that the patient's page and the kiné's
// call show the same way.

import { h } from './dom.js';
import { bind } from './i18n.js';

/** @typedef {import('./types.js').Refusal} Refusal */

/** The refusal's `details.retry_after_seconds` (whole seconds, at most an hour), or 0. @param {Refusal} refusal */
export function retryAfterSeconds(refusal) {
  const details = /** @type {{retry_after_seconds?: unknown} | null | undefined} */ (refusal.details);
  const s = details?.retry_after_seconds;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? Math.min(Math.ceil(s), 3600) : 0;
}

/**
 * A line that counts down the seconds until a retry can work ("Vous pourrez réessayer dans N s."),
 * then says it can ("Vous pouvez réessayer maintenant.") and calls `done`; null when the refusal
 * names no wait.
 * @param {Refusal} refusal
 * @param {() => void} [done]
 * @returns {HTMLParagraphElement | null}
 */
export function retryCountdown(refusal, done = () => {}) {
  const wait = retryAfterSeconds(refusal);
  if (wait <= 0) return null;
  const line = h('p', { class: 'hint retry-wait', attrs: { 'aria-live': 'polite' } });
  let left = wait;
  const tick = () => {
    if (left <= 0) {
      bind(line, 'join.refused.retry_now');
      done();
      return;
    }
    bind(line, 'join.refused.retry_in', { seconds: left });
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
  return line;
}
