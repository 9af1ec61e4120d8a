// What the two sides of a call tell each other directly, never through the server: a WebRTC data
// channel (`telesoin`, opened by the kiné, the offerer, before its offer) carries the chat and the
// microphone / camera / screen-sharing states. docs/protocol.md §"Peer to peer" describes it.
// Also: which camera to use (front/back, kept for the page's life), the codec order (H.264 offered,
// for iPhones), and which m-line carries the kiné's shared screen.

/** The data channel's label. */
export const PEER_CHANNEL = 'telesoin';

/**
 * @typedef {{t: 'state', mic: boolean, cam: boolean, share: boolean}
 *   | {t: 'chat', text: string}
 *   | {t: 'net', q: 'good' | 'medium' | 'poor' | 'unknown'}} PeerMessage
 */

/** Longest chat message, in characters. */
export const CHAT_MAX = 1000;

/**
 * Parses a message from the other side; anything unexpected is dropped (never thrown).
 * @param {unknown} data
 * @returns {PeerMessage | null}
 */
export function parsePeerMessage(data) {
  if (typeof data !== 'string' || data.length > 4 * CHAT_MAX) return null;
  /** @type {any} */
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return null;
  }
  if (!m || typeof m !== 'object') return null;
  if (m.t === 'state' && typeof m.mic === 'boolean' && typeof m.cam === 'boolean') return { t: 'state', mic: m.mic, cam: m.cam, share: m.share === true };
  if (m.t === 'chat' && typeof m.text === 'string' && m.text.trim()) return { t: 'chat', text: m.text.slice(0, CHAT_MAX) };
  if (m.t === 'net' && ['good', 'medium', 'poor', 'unknown'].includes(m.q)) return { t: 'net', q: m.q };
  return null;
}

/**
 * The mid of the second video m-line of an SDP: the kiné's screen-sharing sender (see
 * Call.attachRoom). Both sides apply the same rule to the same description.
 * @param {string | undefined} sdp
 * @returns {string | null}
 */
export function screenMid(sdp) {
  if (!sdp) return null;
  let videos = 0;
  let inVideo = false;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      inVideo = line.startsWith('m=video');
      if (inVideo) videos += 1;
    } else if (inVideo && videos === 2 && line.startsWith('a=mid:')) {
      return line.slice(6).trim();
    }
  }
  return null;
}

/**
 * Offers H.264 right after VP8 on a video transceiver (iPhones decode it in hardware), keeping
 * every other codec. Browsers without setCodecPreferences keep their own order.
 * @param {RTCRtpTransceiver} t
 */
export function preferH264(t) {
  if (typeof t.setCodecPreferences !== 'function' || t.receiver.track?.kind !== 'video') return;
  const caps = RTCRtpReceiver.getCapabilities?.('video');
  if (!caps) return;
  const rank = (/** @type {{mimeType: string}} */ c) => {
    const m = c.mimeType.toLowerCase();
    if (m === 'video/vp8') return 0;
    if (m === 'video/h264') return 1;
    if (m === 'video/rtx' || m === 'video/red' || m === 'video/ulpfec') return 3;
    return 2;
  };
  const codecs = [...caps.codecs].sort((a, b) => rank(a) - rank(b));
  try {
    t.setCodecPreferences(codecs);
  } catch {
    // A browser that refuses a list it gave us: keep its default.
  }
}

const CAMERA_KEY = 'telesoin.camera';

/** The camera chosen on this page (front/back), kept across reconnects and "come back". */
export function preferredCamera() {
  try {
    return sessionStorage.getItem(CAMERA_KEY);
  } catch {
    return null;
  }
}

/** @param {string} deviceId */
function rememberCamera(deviceId) {
  try {
    sessionStorage.setItem(CAMERA_KEY, deviceId);
  } catch {
    // Private mode: kept for this call only.
  }
}

/** @returns {Promise<MediaDeviceInfo[]>} the cameras of this device */
export async function cameras() {
  try {
    return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  } catch {
    return [];
  }
}

/**
 * Opens the next camera (front -> back on a phone) in place of `current`, which is stopped first:
 * phones cannot open two cameras at once. Resolves with the new track, or null.
 * @param {MediaStreamTrack | null} current
 * @returns {Promise<MediaStreamTrack | null>}
 */
export async function nextCamera(current) {
  const list = await cameras();
  if (list.length < 2) return null;
  const currentId = current?.getSettings().deviceId ?? '';
  const at = list.findIndex((d) => d.deviceId === currentId);
  const next = list[(at + 1) % list.length];
  const enabled = current?.enabled ?? true;
  current?.stop();
  const track = await openCamera(next.deviceId);
  if (!track) return null;
  track.enabled = enabled;
  rememberCamera(next.deviceId);
  return track;
}

/**
 * Opens one camera by id (or the preferred one), for the call.
 * @param {string | null} deviceId
 * @returns {Promise<MediaStreamTrack | null>}
 */
export async function openCamera(deviceId) {
  try {
    const video = deviceId ? { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } } : { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' };
    const s = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    return s.getVideoTracks()[0] ?? null;
  } catch {
    return null;
  }
}
