// The call screen shared by the patient page, the dashboard and the embedded call: the other person
// large, oneself small, three large buttons (microphone, camera, hang up) usable with the keyboard
// alone, a network quality indicator and a banner while reconnecting.

import { h } from './dom.js';
import { bind, bindAttr } from './i18n.js';

/** @typedef {import('./i18n.js').Key} Key */
/** @typedef {import('./call.js').Quality} Quality */

/** Performance marks read by the end-to-end tests and usable by any monitoring. */
export const MARK_JOIN_CLICK = 'telesoin:join-click';
export const MARK_FIRST_FRAME = 'telesoin:first-remote-frame';

/** Records the patient's last "join" click (after consent and attestation), for the timing. */
export function markJoinClick() {
  performance.clearMarks(MARK_JOIN_CLICK);
  performance.clearMarks(MARK_FIRST_FRAME);
  performance.mark(MARK_JOIN_CLICK);
}

const SVG = 'http://www.w3.org/2000/svg';
/** @type {Record<string, string>} Material-style 24x24 paths */
const ICONS = {
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z',
  micOff: 'M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23c.56-.98.9-2.09.9-3.28zm-4.02.17c0-.06.02-.11.02-.17V5a3 3 0 0 0-6 0v.18l5.98 5.99zM4.27 3 3 4.27l6.01 6.01V11a3 3 0 0 0 3 3c.22 0 .44-.03.65-.08l1.66 1.66c-.71.33-1.5.52-2.31.52a5 5 0 0 1-5-5H5a7 7 0 0 0 6 6.92V21h2v-3.08c.91-.13 1.77-.45 2.54-.9L19.73 21 21 19.73 4.27 3z',
  cam: 'M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z',
  camOff: 'M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.82L21 17.18V6.5zM3.27 2 2 3.27 4.73 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.21 0 .39-.08.54-.18L19.73 21 21 19.73 3.27 2z',
  hangup: 'M12 9c-1.6 0-3.15.25-4.6.72v3.1c0 .39-.23.74-.56.9-.98.49-1.87 1.12-2.66 1.85-.18.18-.43.28-.7.28-.28 0-.53-.11-.71-.29L.29 13.08a.996.996 0 0 1 0-1.41C3.34 8.78 7.46 7 12 7s8.66 1.78 11.71 4.67c.18.18.29.43.29.71 0 .28-.11.53-.29.71l-2.48 2.48c-.18.18-.43.29-.71.29-.27 0-.52-.11-.7-.28a11.27 11.27 0 0 0-2.67-1.85.996.996 0 0 1-.56-.9v-3.1C15.15 9.25 13.6 9 12 9z',
};

/** @param {string} name */
function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/**
 * @typedef {object} CallView
 * @property {HTMLElement} el
 * @property {HTMLElement} extra a slot above the controls (the kiné's "let in" banner)
 * @property {(stream: MediaStream | null) => void} setLocal
 * @property {(stream: MediaStream | null) => void} setRemote
 * @property {(q: Quality) => void} setQuality
 * @property {(key: Key | null) => void} setBanner a warning banner (reconnecting…), or none
 * @property {(key: Key | null) => void} setNotice a calm line over the remote video (connecting…)
 * @property {(text: string) => void} setTitle
 */

/**
 * @param {object} opts
 * @param {Key} opts.remoteLabel
 * @param {Key} opts.hangupLabel
 * @param {() => void} opts.onHangup
 * @param {(on: boolean) => void} opts.onMic
 * @param {(on: boolean) => void} opts.onCam
 * @returns {CallView}
 */
export function createCallView(opts) {
  const remote = h('video', { class: 'call-remote', ta: { 'aria-label': opts.remoteLabel }, attrs: { autoplay: true, playsinline: true } });
  const self = h('video', { class: 'call-self', ta: { 'aria-label': 'call.self' }, attrs: { autoplay: true, playsinline: true } });
  self.muted = true;
  const notice = h('p', { class: 'call-notice', t: 'call.connecting' });
  const banner = h('div', { class: 'call-banner', attrs: { role: 'status', 'aria-live': 'assertive', hidden: true } });
  const qualityText = h('span', { class: 'call-quality-text', t: 'call.quality.unknown' });
  const quality = h('div', { class: 'call-quality q-unknown' }, h('span', { class: 'bars', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i')), qualityText);
  const title = h('h1', { class: 'call-title visually-hidden', t: 'call.region' });
  const play = h('button', { class: 'btn btn-primary call-play', t: 'call.play', attrs: { type: 'button', hidden: true } });
  const extra = h('div', { class: 'call-extra' });

  let micOn = true;
  let camOn = true;
  const micLabel = h('span', { class: 'ctl-label', t: 'call.mic.on' });
  const mic = h('button', { class: 'ctl ctl-mic', attrs: { type: 'button' } }, icon('mic'), micLabel);
  const camLabel = h('span', { class: 'ctl-label', t: 'call.cam.on' });
  const cam = h('button', { class: 'ctl ctl-cam', attrs: { type: 'button' } }, icon('cam'), camLabel);
  const hangup = h('button', { class: 'ctl ctl-hangup', attrs: { type: 'button' } }, icon('hangup'), h('span', { class: 'ctl-label', t: opts.hangupLabel }));

  mic.addEventListener('click', () => {
    micOn = !micOn;
    mic.classList.toggle('off', !micOn);
    mic.replaceChild(icon(micOn ? 'mic' : 'micOff'), mic.firstChild ?? mic);
    bind(micLabel, micOn ? 'call.mic.on' : 'call.mic.off');
    opts.onMic(micOn);
  });
  cam.addEventListener('click', () => {
    camOn = !camOn;
    cam.classList.toggle('off', !camOn);
    cam.replaceChild(icon(camOn ? 'cam' : 'camOff'), cam.firstChild ?? cam);
    bind(camLabel, camOn ? 'call.cam.on' : 'call.cam.off');
    self.classList.toggle('is-off', !camOn);
    opts.onCam(camOn);
  });
  hangup.addEventListener('click', () => opts.onHangup());

  const controls = h('div', { class: 'call-controls', ta: { 'aria-label': 'call.controls' }, attrs: { role: 'group' } }, mic, cam, hangup);
  const stage = h('div', { class: 'call-stage' }, remote, notice, self, play);
  const el = h('section', { class: 'call', ta: { 'aria-label': 'call.region' } }, title, h('div', { class: 'call-top' }, quality), banner, stage, extra, controls);

  /** @param {HTMLVideoElement} video */
  const tryPlay = (video) => {
    video.play().catch(() => {
      // Autoplay with sound needs a gesture on some browsers: offer one large button.
      play.hidden = false;
    });
  };
  play.addEventListener('click', () => {
    play.hidden = true;
    tryPlay(remote);
  });

  let firstFrameSeen = false;
  const onFirstFrame = () => {
    if (firstFrameSeen) return;
    firstFrameSeen = true;
    if (performance.getEntriesByName(MARK_FIRST_FRAME).length === 0) performance.mark(MARK_FIRST_FRAME);
    notice.hidden = true;
  };

  return {
    el,
    extra,
    setLocal(stream) {
      self.srcObject = stream;
      self.hidden = !stream || stream.getVideoTracks().length === 0;
      if (stream) tryPlay(self);
    },
    setRemote(stream) {
      if (remote.srcObject === stream) return;
      remote.srcObject = stream;
      firstFrameSeen = false;
      if (!stream) {
        notice.hidden = false;
        return;
      }
      // requestVideoFrameCallback fires on the first frame actually presented; older Safari lacks it.
      if (typeof remote.requestVideoFrameCallback === 'function') remote.requestVideoFrameCallback(onFirstFrame);
      else remote.addEventListener('loadeddata', onFirstFrame, { once: true });
      if (stream.getVideoTracks().length === 0) notice.hidden = true;
      tryPlay(remote);
    },
    setQuality(q) {
      quality.className = `call-quality q-${q}`;
      bind(qualityText, /** @type {Key} */ (`call.quality.${q}`));
    },
    setBanner(key) {
      banner.hidden = !key;
      el.classList.toggle('is-reconnecting', !!key);
      if (key) bind(banner, key);
      else banner.replaceChildren();
    },
    setNotice(key) {
      notice.hidden = !key;
      if (key) bind(notice, key);
    },
    setTitle(text) {
      title.removeAttribute('data-i18n');
      title.textContent = text;
      bindAttr(el, 'aria-label', 'call.region');
    },
  };
}
