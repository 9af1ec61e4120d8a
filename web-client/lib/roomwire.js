// Ties a call view to a call for what both sides share: the other side's microphone/camera state
// and messages (data channel), the kiné's shared screen, the call timer, the camera switch, and a
// network indicator that blames the side that really has the problem.
//
// Blame: this side's media arriving badly only says that something between the two sides is
// wrong. When our own signaling socket answers a ping quickly, our network is fine and the trouble
// is on the other side: our indicator stays "good" and the other side's is shown as weak or lost.
// Each side also tells the other its own verdict over the data channel.

import { cameras, nextCamera, openCamera, preferredCamera } from './room.js';

/** @typedef {import('./call.js').CallEvent} CallEvent */
/** @typedef {import('./call.js').Quality} Quality */
/** @typedef {import('./call.js').Call} Call */
/** @typedef {import('./callview.js').CallView} CallView */

/**
 * @param {CallView} view
 * @param {() => Call | null} getCall
 * @returns {{handle: (ev: CallEvent) => void, switchCamera: () => Promise<void>, refreshCameras: () => Promise<void>, reacquireCamera: () => Promise<void>}}
 */
export function wireRoom(view, getCall) {
  /** @type {Quality} */
  let own = 'unknown';
  let peerAway = false;
  let probing = false;
  let lastProbe = 0;

  /** @param {Quality} q */
  const showOwn = (q) => {
    own = q;
    view.setQuality(q);
    getCall()?.sendPeer({ t: 'net', q });
  };

  /** Media connected now, and ever on this call. */
  let mediaUp = false;
  let hadMedia = false;

  /**
   * Media arrive badly or not at all: ask the server whether our own way out works.
   * @param {'poor' | 'lost' | null} peerState what to show for the other side if ours is fine
   * @param {Quality} measured
   */
  const blame = async (peerState, measured) => {
    const call = getCall();
    if (!call || probing || Date.now() - lastProbe < 2_500) return;
    probing = true;
    lastProbe = Date.now();
    const rtt = await call.probeServer();
    probing = false;
    if (rtt !== null && rtt < 800 && navigator.onLine !== false) {
      // Our side reaches the server fast: the other side (or its network) has the problem.
      showOwn(rtt < 300 ? 'good' : 'medium');
      if (peerState) view.setPeerNetwork(peerAway ? 'lost' : peerState);
    } else {
      showOwn(measured === 'unknown' ? 'poor' : measured);
    }
  };

  /** @param {Quality} measured quality of what we receive */
  const onQuality = async (measured) => {
    if (measured === 'good') {
      showOwn('good');
      view.setPeerNetwork('good');
    } else if (measured === 'unknown') {
      // No connected media: after a call was up, the blame set on the drop stays on screen.
      if (!hadMedia || mediaUp) showOwn('unknown');
      else await blame('lost', 'unknown');
    } else {
      await blame(measured === 'poor' ? 'poor' : null, measured);
    }
  };

  const refreshCameras = async () => {
    const call = getCall();
    const hasVideo = !!call?.localStream?.getVideoTracks().length;
    view.setCanSwitch(hasVideo && (await cameras()).length > 1);
  };

  const switchCamera = async () => {
    const call = getCall();
    const current = call?.localStream?.getVideoTracks()[0] ?? null;
    if (!call || !current) return;
    const track = await nextCamera(current);
    if (!track) {
      // The other camera did not open: come back to one that works.
      const back = await openCamera(preferredCamera());
      if (back) await call.replaceVideoTrack(back);
      return;
    }
    await call.replaceVideoTrack(track);
    view.setLocal(call.localStream);
  };

  /** iOS ends the camera track while the page is in the background: open it again on return. */
  const reacquireCamera = async () => {
    const call = getCall();
    const current = call?.localStream?.getVideoTracks()[0];
    if (!call || !current || current.readyState === 'live') return;
    const enabled = current.enabled;
    const track = await openCamera(preferredCamera());
    if (!track) return;
    track.enabled = enabled;
    await call.replaceVideoTrack(track);
    view.setLocal(call.localStream);
  };

  /** @param {CallEvent} ev */
  const handle = (ev) => {
    switch (ev.type) {
      case 'channel':
        view.setChatReady(ev.open);
        if (!ev.open) view.setRemoteState(null);
        break;
      case 'peer_message': {
        const m = ev.msg;
        if (m.t === 'state') view.setRemoteState({ mic: m.mic, cam: m.cam });
        else if (m.t === 'chat') view.addChat({ from: 'them', text: m.text, at: Date.now() });
        else if (m.t === 'net' && !peerAway) view.setPeerNetwork(m.q === 'poor' ? 'poor' : m.q === 'good' && own !== 'poor' ? 'good' : 'unknown');
        break;
      }
      case 'remote_screen':
        view.setRemoteScreen(ev.stream);
        break;
      case 'sharing':
        view.setSharing(ev.on);
        break;
      case 'quality':
        void onQuality(ev.quality);
        break;
      case 'media':
        if (ev.connected) {
          view.startTimer();
          peerAway = false;
        } else if (mediaUp) {
          void blame('lost', 'unknown');
        }
        mediaUp = ev.connected;
        hadMedia ||= ev.connected;
        break;
      case 'peer_left':
        peerAway = true;
        view.setRemoteState(null);
        view.setRemoteScreen(null);
        view.setPeerNetwork(ev.reconnecting ? 'lost' : 'unknown');
        if (!ev.reconnecting) view.setChatReady(false);
        break;
      case 'peer_joined':
        peerAway = false;
        view.setPeerNetwork('unknown');
        break;
      case 'socket':
        if (ev.state === 'reconnecting' || ev.state === 'lost') {
          view.setQuality('poor');
          own = 'poor';
          view.setPeerNetwork('unknown');
        }
        break;
    }
  };
  return { handle, switchCamera, refreshCameras, reacquireCamera };
}
