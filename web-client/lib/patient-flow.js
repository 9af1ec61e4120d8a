// The patient's way through a session, one action per screen:
// what the session is (kiné, time, reimbursement) -> camera and microphone check -> consent (when
// the session asks for it) -> parent/aidant attestation (when required) -> waiting room -> call ->
// end screen. A refusal at any step shows the server's words and the next step.
// Used by the join page (/j) and the embedded call (/embed/).

import { post, ApiError } from './api.js';
import { Call } from './call.js';
import { createCallView, markJoinClick } from './callview.js';
import { openDevices, playChime, stopStream, watchLevel, webrtcSupported } from './devices.js';
import { retryCountdown } from './retry.js';
import { wireRoom } from './roomwire.js';
import { openCamera, preferredCamera } from './room.js';
import { h, field, focusHeading, replace } from './dom.js';
import { bind, bindPair, consentText, fmtDate, fmtDuration, fmtEuros, fmtTime, onLangChange } from './i18n.js';

/** @typedef {import('./types.js').SessionInfo} SessionInfo */
/** @typedef {import('./types.js').Refusal} Refusal */
/** @typedef {import('./i18n.js').Key} Key */

/**
 * What the flow tells its host (the embed page forwards these to the platform).
 * @typedef {'waiting' | 'admitted' | 'connected' | 'reconnecting' | 'ended' | 'refused'} FlowEvent
 */

/** Refusals that may go away by themselves: offer to try again. */
const RETRIABLE = new Set(['too_early', 'token_not_yet_valid', 'unavailable', 'shutting_down', 'network', 'rate_limited', 'price_acceptance_required', 'rejoin_too_frequent']);

/** What the server says about a named person typed on the page: shown under the form. */
const NAME_ERRORS = new Set(['representative_consent_required', 'representative_unexpected', 'companion_unnamed']);

/**
 * @param {HTMLElement} root where screens are drawn
 * @param {object} opts
 * @param {string} opts.token
 * @param {(event: FlowEvent, detail?: Record<string, unknown>) => void} [opts.report]
 */
export function runPatientFlow(root, opts) {
  const report = opts.report ?? (() => {});
  /** @type {MediaStream | null} */
  let stream = null;
  /** @type {Call | null} */
  let call = null;
  /** @type {SessionInfo | null} */
  let session = null;
  /** @type {import('./callview.js').CallView | null} */
  let view = null;
  let stopLevel = () => {};
  let wasConnected = false;
  /** The patient pressed "hang up" (the server's `ended.reason` does not say who did). */
  let leaving = false;
  let peerGone = false;
  /** The reason shown on the waiting screen (the flow may ask for consent first). */
  let lastWaiting = '';
  /** What this page already answered: asked again after a hang-up and a return, it answers alone. */
  /** @type {'parent' | 'aidant' | null} */
  let attested = null;
  /** Who was attested present (name, relation), sent again with a repeated attestation. */
  /** @type {{name: string, relation: string} | null} */
  let companionWho = null;
  /** @type {string | null} */
  let consented = null;
  /** A minor's legal representative who consented on this page. */
  /** @type {{name: string, relation: string} | null} */
  let representative = null;
  /** The error element of the form on screen, for a refusal of what it sent. */
  /** @type {HTMLElement | null} */
  let formError = null;
  /** @type {(() => void) | null} */
  let redrawForm = null;
  /** @type {ReturnType<typeof wireRoom> | null} */
  let room = null;
  /** The other side left (not a drop): what the patient can do now is on screen. */
  let kineLeft = false;

  /** @param {string} name @param {...import('./dom.js').Child} children */
  const show = (name, ...children) => {
    stopLevel();
    stopLevel = () => {};
    const screen = h('div', { class: `screen screen-${name}`, attrs: { 'data-screen': name } }, ...children);
    replace(root, screen);
    document.body.classList.toggle('in-call', name === 'call');
    focusHeading(screen);
    return screen;
  };

  const browsers = () => h('p', { class: 'hint', t: 'join.browsers' });

  // 1. What the session is, before anything is asked of the patient.
  async function intro() {
    if (!webrtcSupported()) {
      show('unsupported', h('h1', { t: 'join.unsupported.title' }), h('p', { class: 'lead', t: 'join.unsupported.text' }));
      return;
    }
    show('loading', h('p', { class: 'lead', attrs: { role: 'status' }, t: 'common.loading' }));
    try {
      session = await post('/api/join-info', { token: opts.token });
    } catch (e) {
      refused(e instanceof ApiError ? e.refusal : { code: 'network', message_fr: '', message_en: '' });
      return;
    }
    const s = /** @type {SessionInfo} */ (session);
    const reimbursed = s.billing_class === 'reimbursable';
    const when = h('p', { class: 'session-when' });
    const renderWhen = () => bind(when, 'join.intro.when', { date: fmtDate(s.starts_at), time: fmtTime(s.starts_at) });
    renderWhen();
    const unsub = onLangChange(renderWhen);
    const next = h('button', { class: 'btn btn-primary btn-block', t: 'join.intro.next', attrs: { type: 'button' } });
    // An HN session: the price is shown before the call and accepted, traced like a consent.
    /** @type {{billing_class: string, price_cents: number | null, accepted_at: string | null} | null} */
    let price = null;
    if (!reimbursed) {
      try {
        price = await post('/api/join-price', { token: opts.token });
      } catch (e) {
        refused(e instanceof ApiError ? e.refusal : { code: 'network', message_fr: '', message_en: '' });
        return;
      }
    }
    const priceBox = h('input', { attrs: { type: 'checkbox', name: 'accept_price', 'aria-describedby': 'price-error', checked: Boolean(price?.accepted_at) } });
    const priceError = h('p', { class: 'field-error', attrs: { id: 'price-error', role: 'alert' } });
    const priceBlock =
      price && typeof price.price_cents === 'number'
        ? h(
            'div',
            { class: 'card price-card', attrs: { 'data-price-cents': String(price.price_cents) } },
            h('p', { class: 'session-price', t: 'join.price.amount', tp: { amount: fmtEuros(price.price_cents) } }),
            field(priceBox, 'join.price.accept'),
            priceError,
          )
        : null;
    show(
      'intro',
      h('h1', { t: 'join.intro.hello' }),
      h(
        'div',
        { class: 'card session-card' },
        h('p', { class: 'session-with', t: 'join.intro.with', tp: { kine: s.kine_name } }),
        when,
        h('p', { class: 'session-act', t: 'join.intro.act', tp: { act: s.act_label } }),
        h('p', { class: `billing billing-${reimbursed ? 'ok' : 'hn'}`, t: reimbursed ? 'join.billing.reimbursable' : 'join.billing.hn' }),
      ),
      priceBlock,
      next,
      browsers(),
    );
    next.addEventListener('click', async () => {
      if (price && typeof price.price_cents === 'number') {
        if (!priceBox.checked) {
          bind(priceError, 'join.price.required');
          priceBox.focus();
          return;
        }
        try {
          await post('/api/join-price/accept', { token: opts.token, price_cents: price.price_cents });
        } catch (e) {
          refused(e instanceof ApiError ? e.refusal : { code: 'network', message_fr: '', message_en: '' });
          return;
        }
      }
      unsub();
      void devices(false);
    });
  }

  // 2. Camera and microphone.
  /** @param {boolean} audioOnly */
  async function devices(audioOnly) {
    show('devices-asking', h('h1', { t: 'join.devices.title' }), h('p', { class: 'lead', attrs: { role: 'status' }, t: 'join.devices.asking' }));
    stopStream(stream);
    const got = await openDevices({ audioOnly });
    if ('problem' in got) {
      deviceProblem(got.problem);
      return;
    }
    stream = got.stream;
    const preview = h('video', { class: 'preview', ta: { 'aria-label': 'join.devices.preview' }, attrs: { autoplay: true, playsinline: true } });
    preview.muted = true;
    preview.srcObject = stream;
    preview.hidden = stream.getVideoTracks().length === 0;
    void preview.play().catch(() => {});
    const meter = h('meter', { class: 'mic-meter', ta: { 'aria-label': 'join.devices.mic.label' }, attrs: { min: 0, max: 1, low: 0.05, high: 0.9, optimum: 0.5, value: 0 } });
    const speakerNote = h('p', { class: 'hint', attrs: { role: 'status' } });
    const speaker = h('button', { class: 'btn btn-secondary', t: 'join.devices.speaker', attrs: { type: 'button' } });
    speaker.addEventListener('click', () => {
      playChime();
      bind(speakerNote, 'join.devices.speaker.playing');
    });
    const join = h('button', { class: 'btn btn-primary btn-block', t: 'join.devices.join', attrs: { type: 'button' } });
    // The join button comes right after the picture and the meter: it stays above the fold on
    // a phone, also with large text.
    show(
      'devices',
      h('h1', { t: 'join.devices.title' }),
      preview,
      h('p', { class: 'mic-hint', t: 'join.devices.mic' }),
      meter,
      join,
      h('div', { class: 'row' }, speaker),
      speakerNote,
      browsers(),
    );
    stopLevel = watchLevel(stream, (level) => {
      meter.value = level;
    });
    join.addEventListener('click', () => {
      markJoinClick();
      connect();
    });
  }

  /** @param {import('./devices.js').DeviceProblem} problem */
  function deviceProblem(problem) {
    if (problem === 'unsupported') {
      show('unsupported', h('h1', { t: 'join.unsupported.title' }), h('p', { class: 'lead', t: 'join.unsupported.text' }));
      return;
    }
    /** @type {Record<string, [Key, Key]>} */
    const texts = {
      denied: ['join.devices.denied.title', 'join.devices.denied.text'],
      nocamera: ['join.devices.nocamera.title', 'join.devices.nocamera.text'],
      nodevice: ['join.devices.nodevice.title', 'join.devices.nodevice.text'],
      busy: ['join.devices.busy.title', 'join.devices.busy.text'],
      other: ['join.devices.other.title', 'join.devices.other.text'],
    };
    const [title, text] = texts[problem];
    const retry = h('button', { class: 'btn btn-primary btn-block', t: 'common.retry', attrs: { type: 'button' } });
    retry.addEventListener('click', () => void devices(false));
    const audioOnly = problem === 'nocamera' ? h('button', { class: 'btn btn-secondary btn-block', t: 'join.devices.audioonly', attrs: { type: 'button' } }) : null;
    audioOnly?.addEventListener('click', () => void devices(true));
    show(`device-${problem}`, h('h1', { t: title }), h('p', { class: 'lead', attrs: { role: 'alert' }, t: text }), retry, audioOnly, browsers());
  }

  // 3. Signaling. The server tells what is missing: consent, attestation, or just waiting.
  function connect() {
    show('connecting', h('p', { class: 'lead', attrs: { role: 'status' }, t: 'join.connecting' }));
    call = new Call({
      token: opts.token,
      localStream: stream,
      onEvent: (ev) => {
        room?.handle(ev);
        switch (ev.type) {
          case 'welcome':
            session = ev.session;
            break;
          case 'waiting':
            waiting(ev.reason);
            break;
          case 'admitted':
            inCall();
            report('admitted');
            break;
          case 'remote_stream':
            view?.setRemote(ev.stream);
            break;
          case 'media':
            if (ev.connected && !wasConnected) report('connected');
            if (!ev.connected && wasConnected) report('reconnecting');
            wasConnected = ev.connected;
            // Keep "the kiné left / is reconnecting" visible rather than "connecting…".
            if (ev.connected) view?.setNotice(null);
            else if (!peerGone) view?.setNotice('call.connecting');
            break;
          case 'peer_left':
            peerGone = true;
            kineLeft = !ev.reconnecting;
            // Next steps: nothing to do but wait; the session goes on when the kiné is back.
            view?.setNotice(ev.reconnecting ? 'call.kine.reconnecting' : 'call.kine.left');
            if (!ev.reconnecting) view?.setRemote(null);
            break;
          case 'peer_joined':
            peerGone = false;
            kineLeft = false;
            view?.setNotice('call.connecting');
            break;
          case 'socket':
            if (ev.state === 'reconnecting') {
              view?.setBanner('call.reconnecting');
              report('reconnecting');
            } else if (ev.state === 'open') {
              view?.setBanner(null);
            } else if (ev.state === 'lost') {
              lost();
            }
            break;
          case 'refused':
            refused(ev.refusal);
            break;
          case 'error':
            console.warn('server error', ev.refusal.code);
            // A name or relation the server refused: back to the form, with its words.
            if (NAME_ERRORS.has(ev.refusal.code) && redrawForm) {
              redrawForm();
              if (formError) bindPair(formError, ev.refusal.message_fr, ev.refusal.message_en);
            }
            break;
          case 'ended':
            ended(ev.billable_seconds, ev.reason);
            break;
          case 'replaced':
            replaced();
            break;
          case 'lobby': {
            // A kiné seat in an embedded call: offer the one action it needs.
            const c = call;
            if (!view || !c) break;
            const admit = h('button', { class: 'btn btn-primary btn-block', t: 'embed.admit', attrs: { type: 'button' } });
            admit.addEventListener('click', () => {
              c.admit(ev.participant);
              view?.extra.replaceChildren();
            });
            view.extra.replaceChildren(admit);
            break;
          }
        }
      },
    });
    call.start();
  }

  /** @param {import('./types.js').WaitReason} reason */
  function waiting(reason) {
    report('waiting', { reason });
    if (reason === 'consent_required') {
      // Given on this page before a hang-up: the same text, the same answer.
      if (consented !== null && consented === (session?.consent_text_version ?? '')) {
        call?.consent(consented, representative);
        return;
      }
      return consent();
    }
    if (reason === 'attestation_parent' || reason === 'attestation_aidant') {
      const companion = reason === 'attestation_parent' ? 'parent' : 'aidant';
      if (attested === companion && companionWho) {
        call?.attest(companion, companionWho);
        return;
      }
      return attest(companion);
    }
    if (view) {
      // Already in the call (reconnected before the kiné let us back in): keep the video, say why.
      view.setNotice(kineLeft ? 'call.kine.left' : reason === 'kine_absent' ? 'join.waiting.kine_absent' : 'join.waiting.awaiting_admission');
      return;
    }
    if (lastWaiting === reason && root.querySelector('[data-screen="waiting"]')) return;
    lastWaiting = reason;
    const self = h('video', { class: 'preview preview-small', ta: { 'aria-label': 'call.self' }, attrs: { autoplay: true, playsinline: true } });
    self.muted = true;
    self.srcObject = stream;
    self.hidden = !stream?.getVideoTracks().length;
    void self.play().catch(() => {});
    show(
      'waiting',
      h('h1', { t: 'join.waiting.title' }),
      h('div', { class: 'waiting-pulse', attrs: { 'aria-hidden': 'true' } }),
      h('p', { class: 'lead', attrs: { role: 'status' }, t: reason === 'kine_absent' ? 'join.waiting.kine_absent' : 'join.waiting.awaiting_admission' }),
      h('p', { t: 'join.waiting.calm' }),
      self,
    );
  }

  /**
   * A name and a relation, typed: the inputs, and a check that says what is missing.
   * @param {string} prefix `rep` or `companion`
   * @param {{name: string, relation: string} | null} initial
   * @param {Key} nameLabel @param {Key} relationLabel
   */
  function personFields(prefix, initial, nameLabel, relationLabel) {
    const name = h('input', { attrs: { type: 'text', name: `${prefix}_name`, autocomplete: 'name', maxlength: 120, required: true, value: initial?.name ?? '' } });
    const relation = h('input', { attrs: { type: 'text', name: `${prefix}_relation`, maxlength: 40, required: true, value: initial?.relation ?? '' } });
    return {
      fields: [field(name, nameLabel), field(relation, relationLabel)],
      /** @returns {{name: string, relation: string} | null} */
      value: () => {
        const n = /** @type {HTMLInputElement} */ (name).value.trim();
        const r = /** @type {HTMLInputElement} */ (relation).value.trim();
        return n && r ? { name: n, relation: r } : null;
      },
      focus: () => (/** @type {HTMLInputElement} */ (name).value.trim() ? relation : name).focus(),
    };
  }

  function consent() {
    const version = session?.consent_text_version ?? '';
    // A minor does not consent herself: her parent or legal representative does, named.
    const minor = Boolean(session?.minor);
    const text = h('div', { class: 'consent-text card', attrs: { tabindex: 0 } });
    const renderText = () => replace(text, ...consentText(version).map((p) => h('p', {}, p)));
    renderText();
    const unsub = onLangChange(renderText);
    const box = h('input', { attrs: { type: 'checkbox', 'aria-describedby': 'consent-error' } });
    const error = h('p', { class: 'field-error', attrs: { id: 'consent-error', role: 'alert' } });
    const submit = h('button', { class: 'btn btn-primary btn-block', t: 'join.consent.submit', attrs: { type: 'submit' } });
    const rep = minor ? personFields('representative', representative, 'join.consent.rep.name', 'join.consent.rep.relation') : null;
    const form = h(
      'form',
      { class: 'stack', attrs: { novalidate: true } },
      minor ? h('p', { class: 'lead', t: 'join.consent.minor' }) : null,
      text,
      h('p', { class: 'hint', t: 'join.consent.version', tp: { version } }),
      ...(rep?.fields ?? []),
      field(box, minor ? 'join.consent.rep.check' : 'join.consent.check'),
      error,
      submit,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const who = rep?.value() ?? null;
      if (rep && !who) {
        bind(error, 'join.consent.rep.required');
        rep.focus();
        return;
      }
      if (!box.checked) {
        bind(error, minor ? 'join.consent.rep.tick' : 'join.consent.required');
        box.focus();
        return;
      }
      unsub();
      markJoinClick();
      consented = version;
      representative = who;
      call?.consent(version, who);
      show('connecting', h('p', { class: 'lead', attrs: { role: 'status' }, t: 'join.connecting' }));
    });
    formError = error;
    redrawForm = () => {
      consented = null;
      consent();
    };
    show('consent', h('h1', { t: minor ? 'join.consent.minor.title' : 'join.consent.title' }), form);
  }

  /** @param {'parent' | 'aidant'} companion */
  function attest(companion) {
    const box = h('input', { attrs: { type: 'checkbox', 'aria-describedby': 'attest-error' } });
    const error = h('p', { class: 'field-error', attrs: { id: 'attest-error', role: 'alert' } });
    const submit = h('button', { class: 'btn btn-primary btn-block', t: 'join.attest.submit', attrs: { type: 'submit' } });
    // The parent who consented is, most often, the one next to the patient.
    const who = personFields('companion', companionWho ?? (companion === 'parent' ? representative : null), 'join.attest.name', 'join.attest.relation');
    const form = h(
      'form',
      { class: 'stack', attrs: { novalidate: true } },
      h('p', { class: 'lead', t: companion === 'parent' ? 'join.attest.parent.text' : 'join.attest.aidant.text' }),
      ...who.fields,
      field(box, companion === 'parent' ? 'join.attest.parent.check' : 'join.attest.aidant.check'),
      error,
      submit,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const person = who.value();
      if (!person) {
        bind(error, 'join.attest.named');
        who.focus();
        return;
      }
      if (!box.checked) {
        bind(error, 'join.attest.required');
        box.focus();
        return;
      }
      markJoinClick();
      attested = companion;
      companionWho = person;
      call?.attest(companion, person);
      show('connecting', h('p', { class: 'lead', attrs: { role: 'status' }, t: 'join.connecting' }));
    });
    formError = error;
    redrawForm = () => {
      attested = null;
      attest(companion);
    };
    show(`attest-${companion}`, h('h1', { t: companion === 'parent' ? 'join.attest.parent.title' : 'join.attest.aidant.title' }), form);
  }

  // 4. The call.
  function inCall() {
    if (view) {
      view.setNotice(wasConnected ? null : 'call.connecting');
      return;
    }
    // An embedded call may seat the kiné: then "end the session" and "leave the room".
    const kineSeat = call?.role === 'kine';
    const v = createCallView({
      side: kineSeat ? 'kine' : 'patient',
      remoteLabel: kineSeat ? 'call.remote.patient' : 'call.remote.kine',
      onHangup: () => {
        const c = call;
        if (!c) return;
        leaving = true;
        void c.hangup().then((e) => ended(e?.billable_seconds ?? null, 'self'));
      },
      onLeave: kineSeat
        ? () => {
            leaving = true;
            call?.leave();
            ended(null, 'left');
          }
        : undefined,
      onMic: (on) => call?.setMicrophone(on),
      onCam: (on) => call?.setCamera(on),
      onSwitchCamera: () => room?.switchCamera() ?? Promise.resolve(),
      onShare: kineSeat ? async (on) => (on ? ((await call?.startShare()) ?? false) : ((await call?.stopShare()) ?? false)) : undefined,
      onChat: (text) => call?.sendChat(text) ?? false,
    });
    view = v;
    room = wireRoom(v, () => call);
    v.setLocal(stream);
    const screen = show('call', v.el);
    screen.classList.add('screen-full');
    for (const p of call?.peers.values() ?? []) {
      if (p.stream) v.setRemote(p.stream);
      if (p.channel?.readyState === 'open') v.setChatReady(true);
    }
    if (call?.isMediaConnected()) v.startTimer();
    void room.refreshCameras();
  }

  // iOS stops the camera while the page is in the background: take it back on return.
  const onVisible = () => {
    if (document.visibilityState === 'visible') void room?.reacquireCamera();
  };
  document.addEventListener('visibilitychange', onVisible);

  /** @param {number | null} billable @param {string} reason */
  function ended(billable, reason) {
    if (root.querySelector('[data-screen="ended"], [data-screen="left"]')) return;
    call?.stop();
    stopStream(stream);
    stream = null;
    view?.destroy();
    view = null;
    room = null;
    report('ended', { billable_seconds: billable, reason });
    const selfLeft = leaving || reason === 'self' || reason === 'left';
    if (selfLeft) {
      // A hang-up by mistake is one tap from undone: the seat's admission, consent and
      // attestation stand for the session, so coming back skips every check.
      const back = h('button', { class: 'btn btn-primary btn-block', t: 'join.left.back', attrs: { type: 'button' } });
      back.addEventListener('click', () => void comeBack());
      show(
        'left',
        h('h1', { t: 'join.left.title' }),
        // The way back first: at 200 % text on a phone it must be on screen without scrolling.
        back,
        h('p', { class: 'lead', t: 'join.left.text' }),
        billable !== null ? h('p', { class: 'duration', t: 'join.ended.duration', tp: { duration: fmtDuration(billable) } }) : null,
        h('p', { class: 'hint', t: 'join.left.close' }),
      );
      return;
    }
    show(
      'ended',
      h('h1', { t: 'join.ended.title' }),
      billable !== null ? h('p', { class: 'lead duration', t: 'join.ended.duration', tp: { duration: fmtDuration(billable) } }) : null,
      h('p', { t: 'join.ended.thanks' }),
    );
  }

  /** Back into the session after a hang-up: camera again, then straight to the call. */
  async function comeBack() {
    leaving = false;
    wasConnected = false;
    peerGone = false;
    kineLeft = false;
    lastWaiting = '';
    show('connecting', h('p', { class: 'lead', attrs: { role: 'status' }, t: 'join.connecting' }));
    const got = await openDevices({ audioOnly: false });
    if ('problem' in got) {
      // Without a camera now (taken by another app?): the sound alone still works.
      const audio = await openDevices({ audioOnly: true });
      if ('problem' in audio) {
        deviceProblem(got.problem);
        return;
      }
      stream = audio.stream;
    } else {
      stream = got.stream;
      await keepChosenCamera(stream);
    }
    markJoinClick();
    connect();
  }

  /**
   * The way back opens the default camera: put back the one chosen during the call (the back
   * camera on a phone), stopping the other first (phones cannot open two at once).
   * @param {MediaStream} s
   */
  async function keepChosenCamera(s) {
    const preferred = preferredCamera();
    const current = s.getVideoTracks()[0];
    if (!preferred || !current || current.getSettings().deviceId === preferred) return;
    current.stop();
    s.removeTrack(current);
    const chosen = (await openCamera(preferred)) ?? (await openCamera(null));
    if (chosen) s.addTrack(chosen);
  }

  /** @param {Refusal} refusal */
  function refused(refusal) {
    call?.stop();
    stopStream(stream);
    stream = null;
    view = null;
    report('refused', { code: refusal.code, message_fr: refusal.message_fr, message_en: refusal.message_en });
    const message = h('p', { class: 'lead', attrs: { role: 'alert' } });
    if (refusal.code === 'network' && !refusal.message_fr) bind(message, 'common.error.network');
    else bindPair(message, refusal.message_fr, refusal.message_en);
    const retry = RETRIABLE.has(refusal.code) ? h('button', { class: 'btn btn-primary btn-block', t: 'common.retry', attrs: { type: 'button' } }) : null;
    retry?.addEventListener('click', () => restart());
    // The server says when a retry can work (`rejoin_too_frequent`): until then the button waits,
    // and the patient sees the seconds left rather than a refusal again.
    const countdown = retry
      ? retryCountdown(refusal, () => {
          retry.disabled = false;
        })
      : null;
    if (retry && countdown) retry.disabled = true;
    show('refused', h('h1', { t: 'join.refused.title' }), message, countdown, retry, h('p', { class: 'hint code', t: 'join.refused.code', tp: { code: refusal.code } }));
  }

  function replaced() {
    stopStream(stream);
    stream = null;
    view = null;
    const resume = h('button', { class: 'btn btn-primary btn-block', t: 'join.replaced.resume', attrs: { type: 'button' } });
    resume.addEventListener('click', () => restart());
    show('replaced', h('h1', { t: 'join.replaced.title' }), h('p', { class: 'lead', t: 'join.replaced.text' }), resume);
  }

  function lost() {
    call?.stop();
    view?.destroy();
    view = null;
    report('reconnecting', { gave_up: true });
    const again = h('button', { class: 'btn btn-primary btn-block', t: 'common.retry', attrs: { type: 'button' } });
    again.addEventListener('click', () => {
      markJoinClick();
      connect();
    });
    room = null;
    show('lost', h('h1', { t: 'join.lost.title' }), h('p', { class: 'lead', attrs: { role: 'alert' }, t: 'join.lost.text' }), again, h('p', { class: 'hint', t: 'join.lost.next' }));
  }

  function restart() {
    leaving = false;
    call?.stop();
    call = null;
    view?.destroy();
    view = null;
    room = null;
    wasConnected = false;
    lastWaiting = '';
    void intro();
  }

  void intro();
}
