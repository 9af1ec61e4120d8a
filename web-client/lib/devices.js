// Camera and microphone: ask once, explain a refusal in plain words, measure the microphone level,
// play a test tone. Nothing here is downloaded: the tone is synthesized.

import { preferredCamera } from './room.js';

/**
 * Why the camera and microphone did not open, each with its own words on the page:
 * NotAllowedError -> 'denied' (blocked: the padlock), NotFoundError -> 'nocamera' (a microphone
 * but no camera: sound only is offered) or 'nodevice' (nothing at all), NotReadableError ->
 * 'busy' (in use by another app).
 * @typedef {'denied' | 'nocamera' | 'nodevice' | 'busy' | 'unsupported' | 'other'} DeviceProblem
 */

export function webrtcSupported() {
  return typeof RTCPeerConnection === 'function' && !!navigator.mediaDevices?.getUserMedia;
}

/**
 * Opens the camera and the microphone (or the microphone only).
 * @param {{audioOnly?: boolean}} [opts]
 * @returns {Promise<{stream: MediaStream} | {problem: DeviceProblem}>}
 */
export async function openDevices(opts = {}) {
  if (!webrtcSupported()) return { problem: 'unsupported' };
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  // The camera chosen on this page before (front/back) when there is one, else the front one.
  const chosen = preferredCamera();
  const video = opts.audioOnly ? false : chosen ? { width: { ideal: 1280 }, height: { ideal: 720 }, deviceId: { ideal: chosen } } : { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }) };
  } catch (e) {
    const name = e instanceof DOMException ? e.name : '';
    if (name === 'NotAllowedError' || name === 'SecurityError') return { problem: 'denied' };
    if (name === 'NotReadableError' || name === 'AbortError') return { problem: 'busy' };
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      return { problem: video && (await hasMicrophone()) ? 'nocamera' : 'nodevice' };
    }
    return { problem: 'other' };
  }
}

async function hasMicrophone() {
  try {
    return (await navigator.mediaDevices.enumerateDevices()).some((d) => d.kind === 'audioinput');
  } catch {
    return false;
  }
}

/** @param {MediaStream | null | undefined} stream */
export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** @type {AudioContext | null} */
let sharedCtx = null;

/** One AudioContext per page, created on a user gesture so that it may play. */
export function audioContext() {
  if (!sharedCtx) sharedCtx = new AudioContext();
  if (sharedCtx.state === 'suspended') void sharedCtx.resume();
  return sharedCtx;
}

/**
 * Calls `onLevel` about 10 times a second with the microphone level in [0, 1].
 * @param {MediaStream} stream
 * @param {(level: number) => void} onLevel
 * @returns {() => void} stop
 */
export function watchLevel(stream, onLevel) {
  if (!stream.getAudioTracks().length) return () => {};
  const ctx = audioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const rms = Math.sqrt(sum / buf.length);
    // Speech sits around 0.02-0.2 RMS; stretch it so that talking fills most of the bar.
    onLevel(Math.min(1, rms * 6));
  }, 100);
  return () => {
    clearInterval(timer);
    source.disconnect();
  };
}

/** Plays a short, gentle two-note tone: the speaker test, and the kiné's "someone waits" chime. */
export function playChime() {
  // Before any gesture the context cannot start: skip the sound (the screen and the title still tell).
  if (!sharedCtx && !navigator.userActivation?.hasBeenActive) return;
  const ctx = audioContext();
  const now = ctx.currentTime;
  for (const [i, freq] of [660, 880].entries()) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.35);
    gain.gain.exponentialRampToValueAtTime(0.3, now + i * 0.35 + 0.03);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.35 + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + i * 0.35);
    osc.stop(now + i * 0.35 + 0.65);
  }
}
