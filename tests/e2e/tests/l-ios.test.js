// l) What iPhone Safari needs, tested where Chromium can show it (WebKitGTK has no WebRTC here,
// see the closing note of issue 11): videos play inline, a refused play() offers "Touchez pour
// activer le son" and a tap starts the sound, the kiné's offer puts H.264 right after VP8 (iPhones
// decode it in hardware), and a camera track stopped while the page was in the background is
// re-acquired when the page comes back, with frames reaching the kiné again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { kineApi, kineJoins, launch, loginDashboard, newContext, patientToJoin, shot, waitConnected, waitFramesRise, kineEnds } from '../lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/**
 * Safari refuses a video's play() with sound until the page gets a tap; Chromium here is
 * launched to allow it. This makes the remote video's first play() refuse as Safari's does
 * (NotAllowedError), and counts the plays that went through.
 */
const SAFARI_AUTOPLAY = () => {
  const w = /** @type {any} */ (window);
  w.__refusedPlays = 0;
  w.__plays = 0;
  const native = HTMLMediaElement.prototype.play;
  /** @this {HTMLMediaElement} */
  HTMLMediaElement.prototype.play = function () {
    if (this instanceof HTMLVideoElement && !this.muted && w.__refusedPlays === 0) {
      w.__refusedPlays += 1;
      return Promise.reject(new DOMException('play() needs a user gesture', 'NotAllowedError'));
    }
    w.__plays += 1;
    return native.call(this);
  };
};

test('l) iPhone paths: inline video, the tap to turn the sound on, H.264 offered, the camera back after the background', async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Iphone', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(browser, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const ctx = await newContext(browser, 'patient');
  await ctx.addInitScript(SAFARI_AUTOPLAY);
  const page = await ctx.newPage();
  await patientToJoin(page, link.url);
  await Promise.all([waitConnected(page), waitConnected(kine)]);

  // Every video plays inline (an iPhone would otherwise open it full screen, controls gone).
  const videos = await page.locator('video').evaluateAll((vs) => vs.map((v) => ({ cls: v.className, inline: v.hasAttribute('playsinline') })));
  assert.ok(videos.length >= 2, `the call has its videos (${JSON.stringify(videos)})`);
  assert.ok(videos.every((v) => v.inline), `every video has playsinline: ${JSON.stringify(videos)}`);

  // The refused play() offers one large button; a tap plays the kiné's video with its sound.
  const tap = page.getByRole('button', { name: 'Touchez pour activer le son' });
  await tap.waitFor({ timeout: 15_000 });
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__refusedPlays), 1, 'the first play() was refused');
  await shot(page, 'patient-40-tap-for-sound');
  await tap.click();
  await tap.waitFor({ state: 'hidden', timeout: 5_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('video')].some((v) => !v.muted && !v.paused && v.srcObject), null, { timeout: 10_000 });

  // The kiné offers: in its offer's video section H.264 comes right after VP8, before the rest.
  const order = await kine.evaluate(() => {
    const pc = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs).find((c) => c.connectionState === 'connected');
    const sdp = pc?.localDescription?.sdp ?? '';
    const video = sdp.split('\r\nm=').find((s) => s.startsWith('video')) ?? '';
    const payloads = video.split('\r\n')[0].split(' ').slice(3);
    /** @type {Record<string, string>} */
    const names = {};
    for (const line of video.split('\r\n')) {
      const m = /^a=rtpmap:(\d+) ([^/]+)/.exec(line);
      if (m) names[m[1]] = m[2].toLowerCase();
    }
    const caps = RTCRtpReceiver.getCapabilities('video')?.codecs.map((c) => c.mimeType.toLowerCase()) ?? [];
    return { codecs: payloads.map((pt) => names[pt]), h264: caps.includes('video/h264') };
  });
  const media = order.codecs.filter((c) => !['rtx', 'red', 'ulpfec', 'flexfec-03'].includes(c));
  assert.equal(media[0], 'vp8', `VP8 first: ${order.codecs.join(',')}`);
  if (order.h264) assert.equal(media[1], 'h264', `H.264 right after VP8: ${order.codecs.join(',')}`);
  else console.log(`# this Chromium has no H.264 (${order.codecs.join(',')}): its place in the offer is not checked`);

  // In the background an iPhone stops the camera; back in front, the page opens it again.
  const stopped = await page.evaluate(() => {
    const pc = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs).find((c) => c.connectionState === 'connected');
    const track = pc?.getSenders().find((s) => s.track?.kind === 'video')?.track;
    track?.stop();
    return track?.readyState;
  });
  assert.equal(stopped, 'ended', 'the camera track was stopped');
  const gumBefore = await page.evaluate(() => /** @type {any} */ (window).__gum);
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.waitForFunction(() => {
    const pc = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs).find((c) => c.connectionState === 'connected');
    return pc?.getSenders().find((s) => s.track?.kind === 'video')?.track?.readyState === 'live';
  }, null, { timeout: 10_000 });
  assert.ok((await page.evaluate(() => /** @type {any} */ (window).__gum)) > gumBefore, 'the camera was asked for again');
  await waitFramesRise(kine, 'kiné after the patient came back from the background');

  await api.billableAtLeast(session.id, 1);
  await kineEnds(kine);
  await ctx.close();
  await kineCtx.close();
});
