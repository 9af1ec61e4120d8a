// The call controller: one signaling socket, one RTCPeerConnection per remote participant.
//
// Offer rule (docs/protocol.md): the kiné is always the offerer. Whenever the kiné sees an admitted
// patient or companion (in `admitted.peers`, or `peer_joined` with admitted=true, also after a
// reconnect), it sends an offer, with an ICE restart when a connection already exists. Everyone else
// only answers. With a single offerer there is no glare to resolve.
//
// The client reports its media state (`media{state, video_in, video_out}`) on every change and as
// a heartbeat every `welcome.heartbeat_seconds`: the server bills the instants in which kiné AND
// patient are both connected with video flowing both ways. `video_in`: the remote video's decoded
// frames advanced in the last 2 s; `video_out`: a live, enabled local video track is being sent
// and its encoded frames advanced in the last 2 s (getStats, every second). A rejoin after losing
// the server says how long ago the media ended (`join.media_lost_ago_ms`).

import { Signaling } from './signaling.js';
import { preferH264, parsePeerMessage, PEER_CHANNEL, screenMid } from './room.js';

/** @typedef {import('./types.js').ServerMsg} ServerMsg */
/** @typedef {import('./types.js').PeerInfo} PeerInfo */
/** @typedef {import('./types.js').Role} Role */
/** @typedef {import('./types.js').SessionInfo} SessionInfo */
/** @typedef {import('./types.js').WaitReason} WaitReason */
/** @typedef {import('./types.js').Refusal} Refusal */
/** @typedef {'good' | 'medium' | 'poor' | 'unknown'} Quality */

/**
 * What the controller tells its page.
 * @typedef {{type: 'welcome', participant: string, role: Role, session: SessionInfo, resumed: boolean}
 *   | {type: 'waiting', reason: WaitReason}
 *   | {type: 'admitted', peers: PeerInfo[]}
 *   | {type: 'lobby', participant: string, role: Role, reason: WaitReason}
 *   | {type: 'peer_joined', peer: PeerInfo}
 *   | {type: 'peer_left', participant: string, reconnecting: boolean}
 *   | {type: 'remote_stream', participant: string, stream: MediaStream}
 *   | {type: 'media', connected: boolean}
 *   | {type: 'quality', quality: Quality}
 *   | {type: 'socket', state: import('./signaling.js').SocketState}
 *   | {type: 'refused', refusal: Refusal}
 *   | {type: 'error', refusal: Refusal}
 *   | {type: 'ended', billable_seconds: number, reason: string}
 *   | {type: 'replaced'}
 *   | {type: 'channel', participant: string, open: boolean}
 *   | {type: 'peer_message', participant: string, msg: import('./room.js').PeerMessage}
 *   | {type: 'remote_screen', participant: string, stream: MediaStream | null}
 *   | {type: 'sharing', on: boolean}} CallEvent
 */

/** A remote participant and our connection to it. */
class Peer {
  /** @param {string} id @param {RTCPeerConnection} pc */
  constructor(id, pc) {
    this.id = id;
    this.pc = pc;
    /** @type {RTCIceCandidateInit[]} remote candidates that arrived before the remote description */
    this.pending = [];
    /** @type {MediaStream | null} */
    this.stream = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.restartTimer = undefined;
    /** @type {{lost: number, received: number} | null} */
    this.lastStats = null;
    /** @type {RTCDataChannel | null} peer-to-peer messages: chat, microphone/camera/screen states */
    this.channel = null;
    /** @type {RTCRtpSender | null} the kiné's screen-sharing sender */
    this.screenSender = null;
    /** @type {MediaStream | null} the remote shared screen, once its track arrived */
    this.screenStream = null;
  }
}

export class Call {
  /**
   * @param {object} opts
   * @param {string} opts.token
   * @param {MediaStream | null} opts.localStream
   * @param {(ev: CallEvent) => void} opts.onEvent
   * @param {string} [opts.socketUrl]
   */
  constructor(opts) {
    this.token = opts.token;
    this.localStream = opts.localStream;
    this.onEvent = opts.onEvent;
    /** @type {Role | null} */
    this.role = null;
    /** @type {string | null} */
    this.participant = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {RTCIceTransportPolicy} */
    this.icePolicy = 'all';
    this.admitted = false;
    /** @type {Map<string, Peer>} */
    this.peers = new Map();
    /** @type {string | null} last media state reported to the server (connected/in/out) */
    this.reportedKey = null;
    /** Whether video flows each way, from getStats (see sampleVideo). */
    this.video = { in: false, out: false };
    this.videoStats = { decoded: 0, sent: 0, inAt: -Infinity, outAt: -Infinity };
    /** performance.now() when the media connection was last lost (0: connected or never was). */
    this.mediaLostAt = 0;
    this.wasConnected = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.heartbeatTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.videoTimer = undefined;
    this.ended = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.statsTimer = undefined;
    /** @type {MediaStreamTrack | null} the kiné's shared screen or tab */
    this.screenTrack = null;
    /**
     * Offers, answers and candidates are applied one after the other: two offers close together
     * (an ICE restart while a slow device still applies the previous one) must not interleave
     * their awaits (the second createAnswer would find the connection already stable).
     * @type {Promise<void>}
     */
    this.negotiation = Promise.resolve();
    this.signaling = new Signaling({
      token: opts.token,
      url: opts.socketUrl,
      onMessage: (m) => this.handle(m),
      onState: (state) => this.onSocketState(state),
      joinExtra: () => this.rejoinReport(),
    });
  }

  start() {
    this.signaling.start();
    this.statsTimer = setInterval(() => void this.sampleStats(), 1_500);
    this.videoTimer = setInterval(() => void this.sampleVideo(), 1_000);
  }

  /**
   * Attests who is present next to the patient, by name and relation (the server refuses an
   * unnamed attestation: `companion_unnamed`).
   * @param {'parent' | 'aidant'} companion @param {{name: string, relation: string}} who
   */
  attest(companion, who) {
    this.signaling.send({ type: 'attest', companion, name: who.name, relation: who.relation });
  }

  /**
   * Consents to the text of this version; for a minor, the legal representative does, named.
   * @param {string} textVersion @param {{name: string, relation: string} | null} [representative]
   */
  consent(textVersion, representative = null) {
    const rep = representative ? { representative_name: representative.name, representative_relation: representative.relation } : {};
    this.signaling.send({ type: 'consent', text_version: textVersion, ...rep });
  }

  /** Kiné only. @param {string} participant */
  admit(participant) {
    return this.signaling.send({ type: 'admit', participant });
  }

  /** @param {boolean} on */
  setMicrophone(on) {
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = on;
    this.sendState();
  }

  /** @param {boolean} on */
  setCamera(on) {
    for (const track of this.localStream?.getVideoTracks() ?? []) track.enabled = on;
    this.sendState();
    // A camera turned off still sends black frames (the far side keeps decoding): say at once
    // that our video is off (video_out=false), not at the next sample.
    void this.sampleVideo();
  }

  /**
   * Leaves the call (a kiné's hangup ends the session for everyone). Resolves with the server's
   * `ended` when it comes within a few seconds, otherwise with null.
   * @returns {Promise<{billable_seconds: number, reason: string} | null>}
   */
  hangup() {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stop();
        resolve(null);
      }, 4_000);
      this.onEndedOnce = (/** @type {{billable_seconds: number, reason: string}} */ e) => {
        clearTimeout(timer);
        resolve(e);
      };
      // Kept by the signaling until acknowledged, and replayed after a reconnection.
      this.signaling.sendFinal('hangup');
    });
  }

  /**
   * Leaves the room without ending the session (the kiné included): the seat may come back,
   * straight to `admitted`. Resolves like hangup().
   * @returns {Promise<{billable_seconds: number, reason: string} | null>}
   */
  leave() {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stop();
        resolve(null);
      }, 4_000);
      this.onEndedOnce = (/** @type {{billable_seconds: number, reason: string}} */ e) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.signaling.sendFinal('leave');
    });
  }

  /** Releases everything: socket, peer connections, timers. Does not stop the local camera. */
  stop() {
    this.ended = true;
    clearInterval(this.statsTimer);
    clearInterval(this.videoTimer);
    clearInterval(this.heartbeatTimer);
    this.signaling.close();
    for (const peer of this.peers.values()) this.closePeer(peer);
    this.peers.clear();
    this.screenTrack?.stop();
    this.screenTrack = null;
  }

  /** @param {import('./signaling.js').SocketState} state */
  onSocketState(state) {
    this.onEvent({ type: 'socket', state });
    if (state === 'lost') {
      for (const peer of this.peers.values()) this.closePeer(peer);
      this.peers.clear();
      this.reportMedia();
    }
  }

  /** @param {ServerMsg} m */
  handle(m) {
    switch (m.type) {
      case 'welcome':
        this.role = m.role;
        this.participant = m.participant;
        this.iceServers = m.ice_servers ?? [];
        // Privacy mode: TURN only, so that the other side never sees this device's address.
        this.icePolicy = m.ice_transport_policy === 'relay' ? 'relay' : 'all';
        this.admitted = false;
        this.reportedKey = null;
        this.startHeartbeat(m.heartbeat_seconds ?? 10);
        this.onEvent({ type: 'welcome', participant: m.participant, role: m.role, session: m.session, resumed: m.resumed });
        break;
      case 'waiting':
        this.onEvent({ type: 'waiting', reason: m.reason });
        break;
      case 'admitted':
        this.admitted = true;
        this.onEvent({ type: 'admitted', peers: m.peers });
        // After a reconnection the server needs our media state again.
        this.reportMedia(true);
        for (const peer of m.peers) this.maybeOffer(peer);
        break;
      case 'lobby_waiting':
        this.onEvent({ type: 'lobby', participant: m.participant, role: m.role, reason: m.reason });
        break;
      case 'peer_joined':
        this.onEvent({ type: 'peer_joined', peer: m.peer });
        this.maybeOffer(m.peer);
        break;
      case 'peer_left': {
        this.onEvent({ type: 'peer_left', participant: m.participant, reconnecting: m.reconnecting });
        const peer = this.peers.get(m.participant);
        if (peer && !m.reconnecting) {
          this.closePeer(peer);
          this.peers.delete(m.participant);
          this.reportMedia();
        }
        break;
      }
      case 'offer':
        this.serially(() => this.onOffer(m.from, m.data));
        break;
      case 'answer':
        this.serially(() => this.onAnswer(m.from, m.data));
        break;
      case 'candidate':
        this.serially(() => this.onCandidate(m.from, m.data));
        break;
      case 'refused':
        this.stop();
        this.onEvent({ type: 'refused', refusal: m });
        break;
      case 'error':
        this.onEvent({ type: 'error', refusal: m });
        break;
      case 'ended': {
        const ended = { billable_seconds: m.billable_seconds, reason: m.reason };
        this.stop();
        this.onEndedOnce?.(ended);
        this.onEvent({ type: 'ended', ...ended });
        break;
      }
      case 'replaced':
        this.stop();
        this.onEvent({ type: 'replaced' });
        break;
      case 'pong':
        this.onPong?.();
        break;
    }
  }

  /** @type {((e: {billable_seconds: number, reason: string}) => void) | undefined} */
  onEndedOnce = undefined;

  /**
   * Runs one negotiation step after the previous ones (see `negotiation`).
   * @param {() => Promise<void>} step
   */
  serially(step) {
    // After stop() nothing queued may make a connection again.
    this.negotiation = this.negotiation.then(() => (this.ended ? undefined : step())).catch((e) => console.warn('negotiation step failed', e));
  }

  /** The kiné offers to every admitted non-kiné peer. @param {PeerInfo} info */
  maybeOffer(info) {
    if (this.role !== 'kine' || !info.admitted || info.role === 'kine' || info.participant === this.participant) return;
    this.offer(info.participant);
  }

  /** Queues an offer (see `negotiation`). @param {string} id */
  offer(id) {
    this.serially(() => this.makeOffer(id));
  }

  /** @param {string} id */
  async makeOffer(id) {
    let peer = this.peers.get(id);
    const restart = !!peer && peer.pc.connectionState !== 'closed';
    if (!peer || !restart) peer = this.createPeer(id);
    const pc = peer.pc;
    try {
      const desc = await pc.createOffer(restart ? { iceRestart: true } : {});
      await pc.setLocalDescription(desc);
      const local = pc.localDescription;
      if (local) this.signaling.send({ type: 'offer', to: id, data: { type: local.type, sdp: local.sdp } });
    } catch (e) {
      console.warn('offer failed', e);
    }
  }

  /** @param {string} from @param {RTCSessionDescriptionInit} data */
  async onOffer(from, data) {
    let peer = this.peers.get(from);
    if (!peer || peer.pc.connectionState === 'closed' || peer.pc.connectionState === 'failed') {
      if (peer) this.closePeer(peer);
      peer = this.createPeer(from);
    }
    try {
      await peer.pc.setRemoteDescription(data);
    } catch {
      // The offerer started over with a new connection (new DTLS fingerprint): follow it.
      this.closePeer(peer);
      peer = this.createPeer(from);
      await peer.pc.setRemoteDescription(data);
    }
    await this.flushCandidates(peer);
    const answer = await peer.pc.createAnswer();
    await peer.pc.setLocalDescription(answer);
    const local = peer.pc.localDescription;
    if (local) this.signaling.send({ type: 'answer', to: from, data: { type: local.type, sdp: local.sdp } });
  }

  /** @param {string} from @param {RTCSessionDescriptionInit} data */
  async onAnswer(from, data) {
    const peer = this.peers.get(from);
    if (!peer || peer.pc.signalingState !== 'have-local-offer') return;
    try {
      await peer.pc.setRemoteDescription(data);
      await this.flushCandidates(peer);
    } catch (e) {
      console.warn('answer rejected', e);
    }
  }

  /** @param {string} from @param {RTCIceCandidateInit} data */
  async onCandidate(from, data) {
    const peer = this.peers.get(from);
    if (!peer) return;
    if (!peer.pc.remoteDescription) {
      peer.pending.push(data);
      return;
    }
    try {
      await peer.pc.addIceCandidate(data);
    } catch {
      // A candidate of a previous ICE generation: harmless.
    }
  }

  /** @param {Peer} peer */
  async flushCandidates(peer) {
    const pending = peer.pending.splice(0);
    for (const c of pending) {
      try {
        await peer.pc.addIceCandidate(c);
      } catch {
        // See onCandidate.
      }
    }
  }

  /** @param {string} id @returns {Peer} */
  createPeer(id) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.icePolicy,
      bundlePolicy: 'max-bundle',
    });
    const peer = new Peer(id, pc);
    this.peers.set(id, peer);
    if (this.localStream) {
      for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    }
    // Receive even when we send nothing (audio-only patient, camera refused).
    if (!this.localStream?.getVideoTracks().length) pc.addTransceiver('video', { direction: 'recvonly' });
    if (!this.localStream?.getAudioTracks().length) pc.addTransceiver('audio', { direction: 'recvonly' });
    this.attachRoom(peer);
    pc.onicecandidate = (e) => {
      if (e.candidate) this.signaling.send({ type: 'candidate', to: id, data: e.candidate.toJSON() });
    };
    pc.ontrack = (e) => {
      if (this.onRoomTrack(peer, e)) return;
      const stream = e.streams[0] ?? peer.stream ?? new MediaStream();
      if (!e.streams[0]) stream.addTrack(e.track);
      if (peer.stream !== stream) {
        peer.stream = stream;
        this.onEvent({ type: 'remote_stream', participant: id, stream });
      }
    };
    pc.onconnectionstatechange = () => this.onConnectionState(peer);
    return peer;
  }

  /** @param {Peer} peer */
  onConnectionState(peer) {
    if (this.peers.get(peer.id) !== peer) return;
    const state = peer.pc.connectionState;
    clearTimeout(peer.restartTimer);
    if (state === 'failed') {
      this.reportMedia(false, 'ice_failed');
      if (this.role === 'kine') this.offer(peer.id);
      return;
    }
    if (state === 'disconnected' && this.role === 'kine') {
      // Often transient (a phone switching networks); restart ICE if it lasts.
      peer.restartTimer = setTimeout(() => {
        if (peer.pc.connectionState === 'disconnected') this.offer(peer.id);
      }, 2_500);
    }
    this.reportMedia();
  }

  isMediaConnected() {
    for (const peer of this.peers.values()) if (peer.pc.connectionState === 'connected') return true;
    return false;
  }

  /**
   * Tells the server our aggregate media state when it changed (or always, with `force`).
   * @param {boolean} [force]
   * @param {string} [incident]
   */
  reportMedia(force = false, incident) {
    const connected = this.isMediaConnected();
    this.noteMediaLoss(connected);
    const video_in = connected && this.video.in;
    const video_out = connected && this.video.out;
    const key = `${connected}/${video_in}/${video_out}`;
    if (!force && !incident && key === this.reportedKey) return;
    if (force && this.reportedKey === null && !connected) return;
    /** @type {import('./types.js').ClientMsg} */
    const msg = { type: 'media', state: connected ? 'connected' : 'disconnected', video_in, video_out, ...(incident ? { incident } : {}) };
    if (this.admitted && this.signaling.send(msg)) this.reportedKey = key;
    this.onEvent({ type: 'media', connected });
  }

  /** The heartbeat: the current media state again, every `seconds` (welcome.heartbeat_seconds). */
  startHeartbeat(/** @type {number} */ seconds) {
    clearInterval(this.heartbeatTimer);
    const every = Math.max(2, seconds) * 1_000;
    this.heartbeatTimer = setInterval(() => this.reportMedia(true), every);
  }

  /** Remembers when the media connection was lost, for a rejoin's `media_lost_ago_ms`. */
  noteMediaLoss(/** @type {boolean} */ connected) {
    if (connected) {
      this.wasConnected = true;
      this.mediaLostAt = 0;
    } else if (this.wasConnected && !this.mediaLostAt) {
      this.mediaLostAt = performance.now();
    }
  }

  /**
   * What a (re)join says about the media: nothing while it is connected (or never was), else how
   * long ago it ended; an unacknowledged hang-up ended it when it was made.
   * @returns {Record<string, number>}
   */
  rejoinReport() {
    const hungUp = this.signaling?.pendingAgoMs() ?? null;
    if (hungUp !== null) return { media_lost_ago_ms: hungUp };
    this.noteMediaLoss(this.isMediaConnected());
    if (!this.mediaLostAt) return {};
    return { media_lost_ago_ms: Math.max(0, Math.round(performance.now() - this.mediaLostAt)) };
  }

  /**
   * Whether video flows each way, from getStats: remote frames decoded, and local frames encoded
   * from a live, enabled video track (a camera turned off sends black frames), each advancing in
   * the last 2 s. Reports on change.
   */
  async sampleVideo() {
    const now = performance.now();
    let decoded = 0;
    let sent = 0;
    let trackLive = false;
    for (const peer of this.peers.values()) {
      if (peer.pc.connectionState !== 'connected') continue;
      for (const sender of peer.pc.getSenders()) {
        const t = sender.track;
        if (t && t.kind === 'video' && t.readyState === 'live' && t.enabled) trackLive = true;
      }
      const report = await peer.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') decoded += s.framesDecoded ?? 0;
        if (s.type === 'outbound-rtp' && s.kind === 'video') sent += s.framesEncoded ?? s.framesSent ?? 0;
      });
    }
    const v = this.videoStats;
    // A replaced connection starts its counters again: a drop is not progress.
    if (decoded > v.decoded) v.inAt = now;
    if (sent > v.sent) v.outAt = now;
    v.decoded = decoded;
    v.sent = sent;
    const video = { in: now - v.inAt <= 2_000, out: trackLive && now - v.outAt <= 2_000 };
    if (video.in !== this.video.in || video.out !== this.video.out) {
      this.video = video;
      this.reportMedia();
    }
  }

  /** @param {Peer} peer */
  closePeer(peer) {
    clearTimeout(peer.restartTimer);
    this.detachRoom(peer);
    peer.pc.onconnectionstatechange = null;
    peer.pc.onicecandidate = null;
    peer.pc.ontrack = null;
    peer.pc.close();
  }

  /** Network quality from getStats: round-trip time and packet loss between two samples. */
  async sampleStats() {
    const peer = [...this.peers.values()].find((p) => p.pc.connectionState === 'connected');
    if (!peer) {
      this.onEvent({ type: 'quality', quality: 'unknown' });
      return;
    }
    const report = await peer.pc.getStats();
    let rtt = /** @type {number | null} */ (null);
    let lost = 0;
    let received = 0;
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && typeof s.currentRoundTripTime === 'number') {
        rtt = s.currentRoundTripTime;
      }
      if (s.type === 'inbound-rtp') {
        lost += s.packetsLost ?? 0;
        received += s.packetsReceived ?? 0;
      }
    });
    const prev = peer.lastStats;
    peer.lastStats = { lost, received };
    if (!prev) return;
    const dLost = Math.max(0, lost - prev.lost);
    const dRecv = Math.max(0, received - prev.received);
    const loss = dLost + dRecv > 0 ? dLost / (dLost + dRecv) : 0;
    // Frame rate is left out on purpose: a remote camera turned off is not a network problem.
    /** @type {Quality} */
    let quality = 'good';
    if ((rtt !== null && rtt > 0.8) || loss > 0.1 || dRecv === 0) quality = 'poor';
    else if ((rtt !== null && rtt > 0.3) || loss > 0.03) quality = 'medium';
    this.onEvent({ type: 'quality', quality });
  }

  // --- The room: peer-to-peer channel, camera switch, screen sharing, leaving (lib/room.js). ---

  /**
   * Per connection: the kiné (offerer) opens the data channel and a second video sender for
   * screen sharing before its offer, so that sharing later needs no renegotiation; the other
   * side picks the channel up.
   * @param {Peer} peer
   */
  attachRoom(peer) {
    const pc = peer.pc;
    if (this.role === 'kine') {
      this.wireChannel(peer, pc.createDataChannel(PEER_CHANNEL, { ordered: true }));
      const t = pc.addTransceiver(this.screenTrack ?? 'video', { direction: 'sendonly' });
      peer.screenSender = t.sender;
    } else {
      pc.ondatachannel = (e) => {
        if (e.channel.label === PEER_CHANNEL) this.wireChannel(peer, e.channel);
      };
    }
    for (const t of pc.getTransceivers()) preferH264(t);
  }

  /** @param {Peer} peer @param {RTCDataChannel} channel */
  wireChannel(peer, channel) {
    peer.channel?.close();
    peer.channel = channel;
    channel.onopen = () => {
      this.onEvent({ type: 'channel', participant: peer.id, open: true });
      this.sendState(peer);
    };
    channel.onclose = () => {
      if (peer.channel === channel) this.onEvent({ type: 'channel', participant: peer.id, open: false });
    };
    channel.onmessage = (e) => {
      const msg = parsePeerMessage(e.data);
      if (!msg) return;
      if (msg.t === 'state') this.showRemoteScreen(peer, msg.share);
      this.onEvent({ type: 'peer_message', participant: peer.id, msg });
    };
  }

  /** @param {Peer} peer */
  detachRoom(peer) {
    const channel = peer.channel;
    peer.channel = null;
    if (!channel) return;
    channel.onopen = channel.onclose = channel.onmessage = null;
    channel.close();
  }

  /**
   * The kiné's second video m-line carries the shared screen: its track is kept apart from the
   * camera's stream. Returns true when the track was handled here.
   * @param {Peer} peer @param {RTCTrackEvent} e
   */
  onRoomTrack(peer, e) {
    if (e.track.kind !== 'video' || !e.transceiver.mid || e.transceiver.mid !== screenMid(peer.pc.remoteDescription?.sdp)) return false;
    peer.screenStream = new MediaStream([e.track]);
    return true;
  }

  /** @param {Peer} peer @param {boolean} on */
  showRemoteScreen(peer, on) {
    this.onEvent({ type: 'remote_screen', participant: peer.id, stream: on ? peer.screenStream : null });
  }

  /** Sends one message to every peer whose channel is open. @param {import('./room.js').PeerMessage} msg @returns {boolean} whether anyone got it */
  sendPeer(msg) {
    let sent = false;
    for (const peer of this.peers.values()) {
      if (peer.channel?.readyState !== 'open') continue;
      try {
        peer.channel.send(JSON.stringify(msg));
        sent = true;
      } catch {
        // Closing: the next state message will tell.
      }
    }
    return sent;
  }

  /** Our microphone, camera and sharing state, to one peer or all. @param {Peer} [only] */
  sendState(only) {
    const audio = this.localStream?.getAudioTracks()[0];
    const video = this.localStream?.getVideoTracks()[0];
    /** @type {import('./room.js').PeerMessage} */
    const msg = { t: 'state', mic: !!audio && audio.enabled, cam: !!video && video.enabled && video.readyState === 'live', share: !!this.screenTrack };
    if (only) {
      if (only.channel?.readyState === 'open') only.channel.send(JSON.stringify(msg));
      return;
    }
    this.sendPeer(msg);
  }

  /** @param {string} text @returns {boolean} */
  sendChat(text) {
    return this.sendPeer({ t: 'chat', text: text.slice(0, 1000) });
  }

  /**
   * Puts a new camera track in place of the current one (camera switch, camera re-acquired after
   * the page comes back from the background), on every connection without renegotiation.
   * @param {MediaStreamTrack} track
   */
  async replaceVideoTrack(track) {
    const stream = this.localStream;
    if (!stream) return;
    const old = stream.getVideoTracks()[0] ?? null;
    if (old && old !== track) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
    for (const peer of this.peers.values()) {
      const sender = peer.pc.getSenders().find((s) => s !== peer.screenSender && (s.track === old || (s.track?.kind ?? '') === 'video'));
      try {
        if (sender) await sender.replaceTrack(track);
      } catch {
        if (this.role === 'kine') this.offer(peer.id);
      }
    }
    this.sendState();
  }

  /**
   * The kiné shares a screen or a tab (an exercise video, a document). Resolves with whether
   * sharing is on. Must be called from a click (browsers require a gesture).
   * @returns {Promise<boolean>}
   */
  async startShare() {
    if (this.screenTrack) return true;
    /** @type {MediaStream} */
    let display;
    try {
      display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch {
      return false;
    }
    const track = display.getVideoTracks()[0];
    if (!track) return false;
    this.screenTrack = track;
    track.addEventListener('ended', () => void this.stopShare());
    for (const peer of this.peers.values()) await peer.screenSender?.replaceTrack(track).catch(() => {});
    this.sendState();
    this.onEvent({ type: 'sharing', on: true });
    return true;
  }

  /** @returns {Promise<boolean>} false: sharing is off */
  async stopShare() {
    const track = this.screenTrack;
    if (!track) return false;
    this.screenTrack = null;
    track.stop();
    for (const peer of this.peers.values()) await peer.screenSender?.replaceTrack(null).catch(() => {});
    this.sendState();
    this.onEvent({ type: 'sharing', on: false });
    return false;
  }

  /** @type {(() => void) | undefined} */
  onPong = undefined;

  /**
   * Is our own way to the server fine? A ping answered quickly means that media trouble is on the
   * other side (the network indicator then blames the right side). Resolves with the round trip
   * in ms, or null (no answer within 2 s, or no socket).
   * @returns {Promise<number | null>}
   */
  probeServer() {
    return new Promise((resolve) => {
      const sent = performance.now();
      const timer = setTimeout(() => {
        this.onPong = undefined;
        resolve(null);
      }, 2_000);
      this.onPong = () => {
        clearTimeout(timer);
        this.onPong = undefined;
        resolve(performance.now() - sent);
      };
      if (!this.signaling.send({ type: 'ping' })) {
        clearTimeout(timer);
        this.onPong = undefined;
        resolve(null);
      }
    });
  }
}
