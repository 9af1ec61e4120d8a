// The call screen shared by the patient page, the dashboard and the embedded call: the other person
// large, oneself small, large buttons usable with the keyboard alone (microphone, camera, camera
// switch, messages, screen sharing for the kiné, hang up), a top bar with the network of each side,
// the call's duration and full screen, the other side's microphone/camera state, a text chat
// (peer to peer: see lib/room.js) and a banner while reconnecting.
//
// Ending is never one click away from a mistake: "hang up" and "end the session" ask first.

import { confirmDialog, h } from './dom.js';
import { bind, bindAttr, t } from './i18n.js';

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
  switchCam: 'M20 5h-3.17L15 3H9L7.17 5H4c-1.1 0-2 .9-2 2v12c0 1.1.9 2 2 2h16c1.1 0 2-.9 2-2V7c0-1.1-.9-2-2-2zm-5 11.5V14H9v2.5L5.5 13 9 9.5V12h6V9.5l3.5 3.5-3.5 3.5z',
  chat: 'M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z',
  share: 'M20 18c1.1 0 1.99-.9 1.99-2L22 6c0-1.11-.9-2-2-2H4c-1.11 0-2 .89-2 2v10c0 1.1.89 2 2 2H0v2h24v-2h-4zm-7-3.53v-2.19c-2.78 0-4.61.85-6 2.72.56-2.67 2.11-5.33 6-5.87V7l4 3.73-4 3.74z',
  fullscreen: 'M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z',
  leave: 'M10.09 15.59 11.5 17l5-5-5-5-1.41 1.41L12.67 11H3v2h9.67l-2.58 2.59zM19 3H5a2 2 0 0 0-2 2v4h2V5h14v14H5v-4H3v4a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2V5a2 2 0 0 0-2-2z',
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

/** A large control button: icon above a visible label. @param {string} cls @param {string} iconName @param {Key} label */
function control(cls, iconName, label) {
  const text = h('span', { class: 'ctl-label', t: label });
  const btn = h('button', { class: `ctl ${cls}`, attrs: { type: 'button' } }, icon(iconName), text);
  return { btn, text };
}

/**
 * @typedef {'good' | 'poor' | 'lost' | 'unknown'} PeerNetwork the other side's network, as it reports it
 *
 * @typedef {object} ChatLine
 * @property {'me' | 'them'} from
 * @property {string} text
 * @property {number} at ms since epoch
 */

/**
 * @typedef {object} CallView
 * @property {HTMLElement} el
 * @property {HTMLElement} extra a slot above the controls (the kiné's "let in" banner)
 * @property {(stream: MediaStream | null) => void} setLocal
 * @property {(stream: MediaStream | null) => void} setRemote
 * @property {(stream: MediaStream | null) => void} setRemoteScreen the kiné's shared screen (patient side)
 * @property {(q: Quality) => void} setQuality this side's network
 * @property {(n: PeerNetwork) => void} setPeerNetwork the other side's network
 * @property {(s: {mic: boolean, cam: boolean} | null) => void} setRemoteState the other side's microphone and camera (null: unknown)
 * @property {(key: Key | null) => void} setBanner a warning banner (reconnecting…), or none
 * @property {(key: Key | null, params?: Record<string, string | number>) => void} setNotice a calm line over the remote video (connecting…)
 * @property {(text: string) => void} setTitle
 * @property {(on: boolean) => void} setCanSwitch whether this device has another camera
 * @property {(on: boolean) => void} setChatReady whether messages can be sent (data channel open)
 * @property {(line: ChatLine) => void} addChat
 * @property {(on: boolean) => void} setSharing the kiné's own screen sharing state
 * @property {(on: boolean) => void} setMic reflect a microphone state set elsewhere
 * @property {(on: boolean) => void} setCam reflect a camera state set elsewhere
 * @property {() => void} startTimer starts the call timer once (later calls keep the first start)
 * @property {() => void} destroy stops the timers
 */

/**
 * @param {object} opts
 * @param {'kine' | 'patient'} opts.side
 * @param {Key} opts.remoteLabel
 * @param {() => void} opts.onHangup the patient hangs up / the kiné ends the session (already confirmed)
 * @param {() => void} [opts.onLeave] the kiné leaves the room without ending the session
 * @param {(on: boolean) => void} opts.onMic
 * @param {(on: boolean) => void} opts.onCam
 * @param {() => Promise<void>} [opts.onSwitchCamera]
 * @param {(on: boolean) => Promise<boolean>} [opts.onShare] start/stop sharing; resolves with the new state
 * @param {(text: string) => boolean} [opts.onChat] sends a message; false when it could not
 * @returns {CallView}
 */
export function createCallView(opts) {
  const kine = opts.side === 'kine';
  const remote = h('video', { class: 'call-remote', ta: { 'aria-label': opts.remoteLabel }, attrs: { autoplay: true, playsinline: true } });
  const screen = h('video', { class: 'call-screen', ta: { 'aria-label': 'call.screen.remote' }, attrs: { autoplay: true, playsinline: true, hidden: true } });
  screen.muted = true;
  const self = h('video', { class: 'call-self', ta: { 'aria-label': 'call.self' }, attrs: { autoplay: true, playsinline: true } });
  self.muted = true;
  const notice = h('p', { class: 'call-notice', t: 'call.connecting' });
  const camOffCard = h('div', { class: 'call-camoff', attrs: { hidden: true } }, icon('camOff'), h('span', { t: 'call.remote.cam_off' }));
  const micOffBadge = h('p', { class: 'call-remote-mic', attrs: { hidden: true } }, icon('micOff'), h('span', { t: 'call.remote.mic_off' }));
  const banner = h('div', { class: 'call-banner', attrs: { role: 'status', 'aria-live': 'assertive', hidden: true } });
  const sharingNote = h('p', { class: 'call-sharing', attrs: { role: 'status', hidden: true }, t: 'call.share.active' });
  const qualityText = h('span', { class: 'call-quality-text', t: 'call.quality.unknown' });
  const quality = h('div', { class: 'call-quality q-unknown' }, h('span', { class: 'bars', attrs: { 'aria-hidden': 'true' } }, h('i'), h('i'), h('i')), qualityText);
  const peerNet = h('p', { class: 'call-peer-net', attrs: { role: 'status', hidden: true } });
  const timer = h('p', { class: 'call-timer', ta: { 'aria-label': 'call.timer' }, attrs: { role: 'timer', hidden: true } });
  const fullText = h('span', { class: 'visually-hidden', t: 'call.fullscreen' });
  const full = h('button', { class: 'call-full', attrs: { type: 'button' } }, icon('fullscreen'), fullText);
  const title = h('h1', { class: 'call-title visually-hidden', t: 'call.region' });
  const play = h('button', { class: 'btn btn-primary call-play', t: 'call.play', attrs: { type: 'button', hidden: true } });
  const extra = h('div', { class: 'call-extra' });
  // Announces new messages while the chat is closed (the log itself announces them when open).
  const announcer = h('p', { class: 'visually-hidden', attrs: { 'aria-live': 'polite' } });

  let micOn = true;
  let camOn = true;
  const mic = control('ctl-mic', 'mic', 'call.mic.on');
  const cam = control('ctl-cam', 'cam', 'call.cam.on');
  const flip = control('ctl-switch', 'switchCam', 'call.cam.switch');
  flip.btn.hidden = true;
  const chatBadge = h('span', { class: 'chat-badge', attrs: { 'aria-hidden': 'true', hidden: true } });
  const chatBtn = control('ctl-chat', 'chat', 'call.chat.open');
  chatBtn.btn.append(chatBadge);
  chatBtn.btn.setAttribute('aria-expanded', 'false');
  const share = kine && opts.onShare && typeof navigator.mediaDevices?.getDisplayMedia === 'function' ? control('ctl-share', 'share', 'call.share.start') : null;
  const leave = kine && opts.onLeave ? control('ctl-leave', 'leave', 'call.leave') : null;
  const hangup = control('ctl-hangup', 'hangup', kine ? 'call.end' : 'call.hangup');

  /** @param {{btn: HTMLButtonElement}} c @param {string} name */
  const setIcon = (c, name) => c.btn.replaceChild(icon(name), c.btn.firstChild ?? c.btn);
  const renderMic = () => {
    mic.btn.classList.toggle('off', !micOn);
    setIcon(mic, micOn ? 'mic' : 'micOff');
    bind(mic.text, micOn ? 'call.mic.on' : 'call.mic.off');
  };
  const renderCam = () => {
    cam.btn.classList.toggle('off', !camOn);
    setIcon(cam, camOn ? 'cam' : 'camOff');
    bind(cam.text, camOn ? 'call.cam.on' : 'call.cam.off');
    self.classList.toggle('is-off', !camOn);
  };
  mic.btn.addEventListener('click', () => {
    micOn = !micOn;
    renderMic();
    opts.onMic(micOn);
  });
  cam.btn.addEventListener('click', () => {
    camOn = !camOn;
    renderCam();
    opts.onCam(camOn);
  });
  flip.btn.addEventListener('click', () => {
    flip.btn.disabled = true;
    void (opts.onSwitchCamera?.() ?? Promise.resolve()).finally(() => {
      flip.btn.disabled = false;
    });
  });
  let sharing = false;
  share?.btn.addEventListener('click', () => {
    share.btn.disabled = true;
    void (opts.onShare?.(!sharing) ?? Promise.resolve(sharing))
      .then((on) => setSharing(on))
      .finally(() => {
        share.btn.disabled = false;
      });
  });
  leave?.btn.addEventListener('click', () => opts.onLeave?.());
  hangup.btn.addEventListener('click', async () => {
    const ok = kine
      ? await confirmDialog({ title: 'call.end.confirm.title', text: 'call.end.confirm.text', yes: 'call.end.confirm.yes', no: 'call.end.confirm.no', danger: true })
      : await confirmDialog({ title: 'call.hangup.confirm.title', text: 'call.hangup.confirm.text', yes: 'call.hangup.confirm.yes', no: 'call.hangup.confirm.no', danger: true });
    if (ok) opts.onHangup();
    else hangup.btn.focus();
  });

  // Chat.
  const log = h('div', { class: 'chat-log', attrs: { role: 'log', 'aria-live': 'polite' } });
  const input = h('input', { class: 'chat-input', attrs: { type: 'text', maxlength: 1000, autocomplete: 'off', enterkeyhint: 'send' } });
  const send = h('button', { class: 'btn btn-primary btn-small', t: 'call.chat.send', attrs: { type: 'submit' } });
  const chatError = h('p', { class: 'field-error', attrs: { role: 'alert' } });
  const inputId = `chat-input-${Math.random().toString(36).slice(2, 8)}`;
  input.id = inputId;
  const form = h('form', { class: 'chat-form' }, h('label', { class: 'visually-hidden', t: 'call.chat.label', attrs: { for: inputId } }), input, send);
  const closeChat = h('button', { class: 'btn btn-secondary btn-small', t: 'common.close', attrs: { type: 'button' } });
  const chat = h(
    'section',
    { class: 'call-chat', ta: { 'aria-label': 'call.chat.title' }, attrs: { hidden: true } },
    h('div', { class: 'chat-head' }, h('h2', { t: 'call.chat.title' }), closeChat),
    h('p', { class: 'hint chat-private', t: 'call.chat.private' }),
    log,
    chatError,
    form,
  );
  let unread = 0;
  let chatReady = false;
  const renderUnread = () => {
    chatBadge.hidden = unread === 0;
    chatBadge.textContent = String(unread);
    if (unread > 0) bindAttr(chatBtn.btn, 'aria-label', 'call.chat.unread', { n: unread });
    else chatBtn.btn.removeAttribute('aria-label');
  };
  const openChat = (/** @type {boolean} */ open) => {
    chat.hidden = !open;
    el.classList.toggle('chat-open', open);
    chatBtn.btn.setAttribute('aria-expanded', String(open));
    bind(chatBtn.text, open ? 'call.chat.close' : 'call.chat.open');
    if (open) {
      unread = 0;
      renderUnread();
      input.focus();
      log.lastElementChild?.scrollIntoView({ block: 'end' });
    }
  };
  chatBtn.btn.addEventListener('click', () => openChat(chat.hidden));
  closeChat.addEventListener('click', () => {
    openChat(false);
    chatBtn.btn.focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (!chatReady || !opts.onChat?.(text)) {
      bind(chatError, 'call.chat.unavailable');
      return;
    }
    chatError.replaceChildren();
    input.value = '';
    addChat({ from: 'me', text, at: Date.now() });
  });

  /** @param {ChatLine} line */
  function addChat(line) {
    const who = h('span', { class: 'chat-who', t: line.from === 'me' ? 'call.chat.me' : kine ? 'call.chat.patient' : 'call.chat.kine' });
    const when = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }).format(line.at);
    const item = h('div', { class: `chat-line chat-${line.from}` }, who, h('span', { class: 'chat-time' }, ` ${when} `), h('p', { class: 'chat-text' }, ...linkify(line.text)));
    log.append(item);
    item.scrollIntoView({ block: 'end' });
    if (line.from === 'them' && chat.hidden) {
      unread += 1;
      renderUnread();
      announcer.textContent = `${t('call.chat.new')} ${line.text}`;
    }
  }

  const controls = h(
    'div',
    { class: 'call-controls', ta: { 'aria-label': 'call.controls' }, attrs: { role: 'group' } },
    mic.btn,
    cam.btn,
    flip.btn,
    chatBtn.btn,
    share?.btn,
    leave?.btn,
    hangup.btn,
  );
  const stage = h('div', { class: 'call-stage' }, remote, screen, camOffCard, micOffBadge, notice, self, play);
  const top = h('div', { class: 'call-top' }, quality, peerNet, timer, full);
  const body = h('div', { class: 'call-body' }, stage, chat);
  const el = h('section', { class: `call call-${opts.side}`, ta: { 'aria-label': 'call.region' } }, title, top, banner, sharingNote, body, extra, controls, announcer);

  // Full screen where the browser allows it on an element (not iPhone Safari: then no button).
  full.hidden = typeof el.requestFullscreen !== 'function';
  full.addEventListener('click', () => {
    if (document.fullscreenElement) void document.exitFullscreen().catch(() => {});
    else void el.requestFullscreen().catch(() => {});
  });
  const onFullscreen = () => bind(fullText, document.fullscreenElement === el ? 'call.fullscreen.exit' : 'call.fullscreen');
  document.addEventListener('fullscreenchange', onFullscreen);

  /** @param {HTMLVideoElement} video */
  const tryPlay = (video) => {
    video.play().catch(() => {
      // Autoplay with sound needs a gesture on some browsers (iOS Safari): offer one large button.
      if (video === remote) play.hidden = false;
    });
  };
  play.addEventListener('click', () => {
    play.hidden = true;
    tryPlay(remote);
    if (!screen.hidden) tryPlay(screen);
  });

  let firstFrameSeen = false;
  const onFirstFrame = () => {
    if (firstFrameSeen) return;
    firstFrameSeen = true;
    if (performance.getEntriesByName(MARK_FIRST_FRAME).length === 0) performance.mark(MARK_FIRST_FRAME);
    notice.hidden = true;
  };

  /** @type {number | null} */
  let startedAt = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let tick;
  const renderTimer = () => {
    if (startedAt === null) return;
    const s = Math.floor((Date.now() - startedAt) / 1000);
    const hh = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    timer.textContent = hh > 0 ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
  };

  /** @param {boolean} on */
  function setSharing(on) {
    sharing = on;
    if (!share) return;
    share.btn.classList.toggle('on', on);
    bind(share.text, on ? 'call.share.stop' : 'call.share.start');
    sharingNote.hidden = !on;
  }

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
    setRemoteScreen(stream) {
      screen.srcObject = stream;
      screen.hidden = !stream;
      stage.classList.toggle('has-screen', !!stream);
      if (stream) tryPlay(screen);
    },
    setQuality(q) {
      quality.className = `call-quality q-${q}`;
      bind(qualityText, /** @type {Key} */ (`call.quality.${q}`));
    },
    setPeerNetwork(n) {
      peerNet.hidden = n === 'good' || n === 'unknown';
      peerNet.className = `call-peer-net net-${n}`;
      if (!peerNet.hidden) bind(peerNet, n === 'lost' ? 'call.peer.net.lost' : 'call.peer.net.poor');
    },
    setRemoteState(s) {
      micOffBadge.hidden = !s || s.mic;
      camOffCard.hidden = !s || s.cam;
      remote.classList.toggle('is-off', !!s && !s.cam);
    },
    setBanner(key) {
      banner.hidden = !key;
      el.classList.toggle('is-reconnecting', !!key);
      if (key) bind(banner, key);
      else banner.replaceChildren();
    },
    setNotice(key, params) {
      notice.hidden = !key;
      if (key) bind(notice, key, params);
    },
    setTitle(text) {
      title.removeAttribute('data-i18n');
      title.textContent = text;
      bindAttr(el, 'aria-label', 'call.region');
    },
    setCanSwitch(on) {
      flip.btn.hidden = !on;
    },
    setChatReady(on) {
      chatReady = on;
      if (on) chatError.replaceChildren();
    },
    addChat,
    setSharing,
    setMic(on) {
      micOn = on;
      renderMic();
    },
    setCam(on) {
      camOn = on;
      renderCam();
    },
    startTimer() {
      if (startedAt !== null) return;
      startedAt = Date.now();
      timer.hidden = false;
      renderTimer();
      tick = setInterval(renderTimer, 1_000);
    },
    destroy() {
      clearInterval(tick);
      document.removeEventListener('fullscreenchange', onFullscreen);
    },
  };
}

/**
 * A chat message as text nodes, with https links clickable (the kiné often sends a link).
 * @param {string} text
 * @returns {(Node | string)[]}
 */
function linkify(text) {
  /** @type {(Node | string)[]} */
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/https:\/\/[^\s<>"]+/g)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const url = m[0].replace(/[.,;:!?)]+$/, '');
    out.push(h('a', { attrs: { href: url, target: '_blank', rel: 'noopener noreferrer' } }, url));
    last = at + url.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
