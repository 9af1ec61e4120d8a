// The page before the window opens: when the session is (Europe/Paris), with whom, what to
// prepare, a camera and sound test, and a countdown that turns the page into the join screen by
// itself when the room opens (no reload).

import { openDevices, playChime, stopStream, watchLevel } from '../lib/devices.js';
import { h, replace, focusHeading } from '../lib/dom.js';
import { bind, onLangChange } from '../lib/i18n.js';

/** `jeudi 3 décembre 2026` / `14:30`, always in Paris time (the appointment's), in the page's language. */
function parisDate(/** @type {string} */ iso) {
  const lang = document.documentElement.lang === 'en' ? 'en-GB' : 'fr-FR';
  return new Intl.DateTimeFormat(lang, { timeZone: 'Europe/Paris', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(iso));
}
function parisTime(/** @type {string} */ iso) {
  const lang = document.documentElement.lang === 'en' ? 'en-GB' : 'fr-FR';
  return new Intl.DateTimeFormat(lang, { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
}

/** `2 h 05 min`, `12 min`, `40 s`. @param {number} ms */
function left(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const hrs = Math.floor(s / 3600);
  const min = Math.floor((s % 3600) / 60);
  if (hrs > 0) return `${hrs} h ${String(min).padStart(2, '0')} min`;
  if (min > 0) return `${min} min`;
  return `${s} s`;
}

/**
 * @param {HTMLElement} root
 * @param {{kineName: string, startsAt: string, opensAt: number, offset: number}} info
 * @param {() => void} onOpen
 */
export function waitForWindow(root, info, onOpen) {
  /** @type {MediaStream | null} */
  let stream = null;
  let stopLevel = () => {};
  const title = h('h1', {});
  const renderTitle = () => bind(title, 'join.before.title', { date: parisDate(info.startsAt), time: parisTime(info.startsAt) });
  renderTitle();
  const countdown = h('p', { class: 'lead', attrs: { role: 'timer', 'aria-live': 'off' } });
  const test = h('div', { class: 'stack' });
  const testButton = h('button', { class: 'btn btn-secondary btn-block', t: 'join.before.test', attrs: { type: 'button' } });
  const stopTest = () => {
    stopLevel();
    stopLevel = () => {};
    stopStream(stream);
    stream = null;
    test.replaceChildren();
    bind(testButton, 'join.before.test');
  };
  testButton.addEventListener('click', async () => {
    if (stream) return stopTest();
    const got = await openDevices({});
    if ('problem' in got) {
      replace(test, h('p', { class: 'alert', attrs: { role: 'alert' }, t: got.problem === 'denied' ? 'join.devices.denied.text' : 'join.devices.nocamera.text' }));
      return;
    }
    stream = got.stream;
    const preview = h('video', { class: 'preview', ta: { 'aria-label': 'join.devices.preview' }, attrs: { autoplay: true, playsinline: true } });
    preview.muted = true;
    preview.srcObject = stream;
    void preview.play().catch(() => {});
    const meter = h('meter', { class: 'mic-meter', ta: { 'aria-label': 'join.devices.mic.label' }, attrs: { min: 0, max: 1, value: 0 } });
    const speaker = h('button', { class: 'btn btn-secondary', t: 'join.devices.speaker', attrs: { type: 'button' } });
    speaker.addEventListener('click', () => playChime());
    replace(test, preview, meter, h('div', { class: 'row' }, speaker), h('p', { class: 'hint', t: 'join.before.test.ok' }));
    stopLevel = watchLevel(stream, (level) => {
      meter.value = level;
    });
    bind(testButton, 'join.before.test.stop');
  });
  const screen = h(
    'div',
    { class: 'screen screen-before', attrs: { 'data-screen': 'before' } },
    title,
    h('p', { t: 'join.before.tz' }),
    h('p', { class: 'session-with', t: 'join.before.with', tp: { kine: info.kineName } }),
    countdown,
    h('p', { class: 'card', t: 'join.before.prepare' }),
    testButton,
    test,
  );
  root.replaceChildren(screen);
  focusHeading(screen);
  const unsub = onLangChange(renderTitle);
  const tick = () => {
    const now = Date.now() + info.offset;
    if (now >= info.opensAt) {
      clearInterval(timer);
      unsub();
      stopTest();
      onOpen();
      return;
    }
    bind(countdown, 'join.before.opens', { left: left(info.opensAt - now) });
  };
  // Once a second: also right after a phone wakes from sleep (timers may have been paused).
  const timer = setInterval(tick, 1000);
  tick();
}
