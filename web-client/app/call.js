// The kiné's side of a call, as a full-screen layer over the dashboard. The dashboard mints a kiné
// link for the session (POST /api/sessions/{id}/links {role:'kine'}) and joins over the WebSocket
// like any participant; the kiné is the offerer (see lib/call.js). The kiné may open the room at
// any time, before the appointment too, and leave it ("Quitter la salle") without ending the
// session; "Terminer la séance" ends it for everyone, after a confirmation.

import { post } from '../lib/api.js';
import { Call } from '../lib/call.js';
import { createCallView } from '../lib/callview.js';
import { retryCountdown } from '../lib/retry.js';
import { wireRoom } from '../lib/roomwire.js';
import { openDevices, playChime, stopStream } from '../lib/devices.js';
import { h, replace } from '../lib/dom.js';
import { fmtDuration, fmtTime, t } from '../lib/i18n.js';
import { go } from './state.js';
import { errorAlert, handleError, refresh, refusalAlert } from './ui.js';

/** @typedef {import('../lib/types.js').Session} Session */
/** @typedef {import('../lib/types.js').Link} Link */

/**
 * @typedef {object} Active
 * @property {Session} session
 * @property {Call | null} call
 * @property {MediaStream | null} stream
 * @property {string | null} pendingAdmit a participant to let in as soon as the socket is up
 * @property {import('../lib/callview.js').CallView | null} [view]
 */

/** @type {Active | null} */
let active = null;

const layer = /** @type {HTMLElement} */ (document.getElementById('call-layer'));
const main = /** @type {HTMLElement} */ (document.getElementById('main'));

/** @returns {string | null} */
export function activeSessionId() {
  return active?.session.id ?? null;
}

/** Refusals of the kiné's join that may pass by themselves: the call offers to join again. */
const REJOINABLE = new Set(['rejoin_too_frequent', 'unavailable', 'shutting_down', 'rate_limited']);

/**
 * Joins the session's call (or brings it back), and lets `admit` in when given.
 * @param {Session} session
 * @param {string | null} admit
 */
export async function openCall(session, admit) {
  if (active) {
    if (active.session.id === session.id && admit) {
      if (!active.call?.admit(admit)) active.pendingAdmit = admit;
    }
    showLayer();
    return;
  }
  const current = /** @type {Active} */ ({ session, call: null, stream: null, pendingAdmit: admit });
  active = current;
  const title = h('h1', { class: 'call-layer-title', t: 'app.call.title', tp: { name: session.patient_name } });
  const status = h('div', { class: 'call-layer-status', attrs: { 'aria-live': 'polite' } }, h('p', { t: 'common.loading' }));
  replace(layer, h('div', { class: 'call-layer-head' }, title), status);
  layer.setAttribute('role', 'dialog');
  layer.setAttribute('aria-modal', 'true');
  layer.setAttribute('aria-label', t('app.call.title', { name: session.patient_name }));
  showLayer();
  refresh();

  /** @type {Link} */
  let link;
  try {
    link = await post(`/api/sessions/${session.id}/links`, { role: 'kine' });
  } catch (e) {
    if (handleError(e)) return closeLayer();
    replace(status, errorAlert(e), backButton());
    active = null;
    return;
  }
  const got = await openDevices();
  // Without a camera the kiné can still see and hear the patient.
  current.stream = 'stream' in got ? got.stream : null;

  /** @type {ReturnType<typeof wireRoom> | null} */
  let room = null;
  const view = createCallView({
    side: 'kine',
    remoteLabel: 'call.remote.patient',
    onHangup: () => void endSession(current),
    onLeave: () => leaveRoom(current),
    onMic: (on) => current.call?.setMicrophone(on),
    onCam: (on) => current.call?.setCamera(on),
    onSwitchCamera: () => room?.switchCamera() ?? Promise.resolve(),
    onShare: async (on) => (on ? ((await current.call?.startShare()) ?? false) : ((await current.call?.stopShare()) ?? false)),
    onChat: (text) => current.call?.sendChat(text) ?? false,
  });
  current.view = view;
  view.setLocal(current.stream);
  // Before the window the patient cannot come in yet: say from when.
  const waitingNotice = () =>
    Date.now() < new Date(session.window_start).getTime()
      ? view.setNotice('call.waiting.patient.early', { time: fmtTime(session.window_start) })
      : view.setNotice('call.waiting.patient');
  waitingNotice();
  replace(status);
  layer.append(view.el);

  /** @param {string} participant @param {string} role */
  const lobby = (participant, role) => {
    const admitBtn = h('button', { class: 'btn btn-primary', attrs: { type: 'button', 'data-admit': participant } }, h('span', { t: 'app.action.admit' }));
    admitBtn.addEventListener('click', () => {
      current.call?.admit(participant);
      view.extra.replaceChildren();
    });
    const who = role === 'patient' ? session.patient_name : t('role.companion');
    replace(view.extra, h('div', { class: 'lobby', attrs: { role: 'alert' } }, h('span', { t: 'app.live.waiting', tp: { name: who } }), admitBtn));
    playChime();
  };

  /** Whether the patient is in the call: "connecting…" only makes sense then. */
  let peerHere = false;
  const call = new Call({
    token: link.token,
    localStream: current.stream,
    onEvent: (ev) => {
      room?.handle(ev);
      switch (ev.type) {
        case 'admitted':
          peerHere = ev.peers.some((p) => p.role !== 'kine');
          if (current.pendingAdmit && call.admit(current.pendingAdmit)) current.pendingAdmit = null;
          break;
        case 'welcome':
          if (current.pendingAdmit && call.admit(current.pendingAdmit)) current.pendingAdmit = null;
          break;
        case 'lobby':
          if (ev.participant === current.pendingAdmit) {
            call.admit(ev.participant);
            current.pendingAdmit = null;
          } else if (ev.reason === 'awaiting_admission' || ev.reason === 'kine_absent') {
            lobby(ev.participant, ev.role);
          }
          break;
        case 'peer_joined':
          if (ev.peer.admitted) {
            peerHere = true;
            view.extra.replaceChildren();
            view.setNotice('call.connecting');
          }
          break;
        case 'remote_stream':
          view.setRemote(ev.stream);
          break;
        case 'media':
          if (ev.connected) view.setNotice(null);
          else if (peerHere) view.setNotice('call.connecting');
          break;
        case 'peer_left':
          peerHere = ev.reconnecting;
          // Next steps: the patient may come back with the same link; wait, or end the session.
          view.setNotice(ev.reconnecting ? 'call.patient.reconnecting' : 'call.patient.left');
          if (!ev.reconnecting) view.setRemote(null);
          refresh();
          break;
        case 'socket':
          view.setBanner(ev.state === 'reconnecting' || ev.state === 'lost' ? 'call.reconnecting' : null);
          break;
        case 'ended':
          showEnded(current, ev.billable_seconds);
          break;
        case 'error':
          view.extra.replaceChildren(refusalAlert(ev.refusal), retryCountdown(ev.refusal) ?? '');
          break;
        case 'refused': {
          stopStream(current.stream);
          view.setNotice(null);
          // A refusal that may pass (the seat rejoined too often, the server was busy or
          // restarting): join again from here, once the wait the server names is over.
          const again = REJOINABLE.has(ev.refusal.code) ? h('button', { class: 'btn btn-primary', t: 'app.action.join', attrs: { type: 'button' } }) : null;
          const wait = retryCountdown(ev.refusal, () => {
            if (again) again.disabled = false;
          });
          if (again) {
            again.disabled = wait !== null;
            again.addEventListener('click', () => {
              finish(current);
              void openCall(current.session, null);
            });
          }
          view.extra.replaceChildren(refusalAlert(ev.refusal), wait ?? '', again ?? '');
          break;
        }
        case 'replaced':
          finish(current);
          closeLayer();
          break;
      }
    },
  });
  current.call = call;
  room = wireRoom(view, () => current.call);
  void room.refreshCameras();
  call.start();
}

/** Leaves the room; the session stays open (the patient may still come, the kiné may return). @param {Active} current */
function leaveRoom(current) {
  current.call?.leave();
  finish(current);
  closeLayer();
}

/** @param {Active} current */
async function endSession(current) {
  const ended = await current.call?.hangup();
  if (ended) {
    showEnded(current, ended.billable_seconds);
    return;
  }
  // The socket was down: end it over REST so the session does not stay open.
  try {
    await post(`/api/sessions/${current.session.id}/end`);
  } catch (e) {
    handleError(e);
  }
  showEnded(current, null);
}

/** @param {Active} current @param {number | null} billable */
function showEnded(current, billable) {
  if (active !== current) return;
  finish(current);
  const record = h('button', { class: 'btn btn-primary', t: 'app.action.record', attrs: { type: 'button' } });
  record.addEventListener('click', () => {
    closeLayer();
    go(`/record/${current.session.id}`);
  });
  replace(
    layer,
    h(
      'div',
      { class: 'call-layer-ended card' },
      h('h1', { t: 'app.call.title', tp: { name: current.session.patient_name } }),
      billable !== null ? h('p', { class: 'lead billable', t: 'app.call.ended', tp: { duration: fmtDuration(billable) } }) : null,
      h('div', { class: 'row' }, record, backButton()),
    ),
  );
  layer.querySelector('h1')?.focus();
}

function backButton() {
  const back = h('button', { class: 'btn btn-secondary', t: 'app.call.back', attrs: { type: 'button' } });
  back.addEventListener('click', () => {
    if (active && !active.call) active = null;
    closeLayer();
  });
  return back;
}

/** @param {Active} current */
function finish(current) {
  current.view?.destroy();
  current.call?.stop();
  stopStream(current.stream);
  current.stream = null;
  if (active === current) active = null;
  refresh();
}

function showLayer() {
  layer.hidden = false;
  main.inert = true;
  document.body.classList.add('in-call');
  const heading = layer.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function closeLayer() {
  layer.hidden = true;
  main.inert = false;
  document.body.classList.remove('in-call');
  replace(layer);
  main.focus();
}
