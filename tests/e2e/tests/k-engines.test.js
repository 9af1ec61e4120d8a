// k) The call between engines, not only Chromium-Chromium: Debian's Firefox ESR, driven over
// WebDriver BiDi by puppeteer-core with fake media (media.navigator.streams.fake), in a call
// against Debian Chromium, both ways round: a Firefox patient with a Chromium kiné (the offerer),
// then a Firefox kiné (the offerer) with a Chromium patient. Each side decodes the other's video
// and the chat crosses the engines over the data channel. Skipped when FIREFOX is not executable
// (run.sh installs firefox-esr with apt when missing).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { assertFramesRise, kineApi, kineEnds, kineJoins, launch, loginDashboard, newContext, patientToJoin, screen, server, shot, waitChannel, waitConnected } from '../lib/harness.js';

const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
const skip = existsSync(FIREFOX) ? false : `no Firefox at ${FIREFOX}`;

/** @type {import('playwright-core').Browser} */
let chromium;
/** @type {import('puppeteer-core').Browser | null} */
let firefox = null;
before(async () => {
  chromium = await launch();
  if (skip) return;
  firefox = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    acceptInsecureCerts: true,
    protocolTimeout: 60_000,
    // The French day, as the Chromium contexts (timezoneId Europe/Paris): the dashboard asks for the
    // sessions of the browser's date, the server counts days in Europe/Paris, and with the machine's
    // zone (UTC on CI) the two differ from 23:00 UTC, when the session's row is not on the page.
    env: { ...process.env, TZ: 'Europe/Paris' },
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      // Two browsers on one machine: real host candidates, not mDNS names.
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'intl.accept_languages': 'fr-FR, fr',
    },
  });
});
after(async () => {
  await chromium?.close();
  await firefox?.close();
});

// The same probe as the Chromium pages': keep every RTCPeerConnection for the assertions.
const PROBE = () => {
  const w = /** @type {any} */ (window);
  w.__pcs = [];
  const Native = window.RTCPeerConnection;
  const Wrapped = function (/** @type {any} */ cfg) {
    const pc = new Native(cfg);
    w.__pcs.push(pc);
    return pc;
  };
  Wrapped.prototype = Native.prototype;
  Object.setPrototypeOf(Wrapped, Native);
  window.RTCPeerConnection = /** @type {any} */ (Wrapped);
};

/** @param {import('puppeteer-core').Page} page */
async function ffPage(page) {
  await page.evaluateOnNewDocument(PROBE);
  await page.setViewport({ width: 390, height: 844 });
  return page;
}

/** @param {import('puppeteer-core').Page} page */
async function ffConnected(page) {
  await page.waitForFunction(() => /** @type {any} */ (window).__pcs.some((/** @type {RTCPeerConnection} */ pc) => pc.connectionState === 'connected'), { timeout: 30_000, polling: 200 });
}

/** @param {import('puppeteer-core').Page} page */
async function ffFrames(page) {
  return page.evaluate(async () => {
    let frames = 0;
    for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
      if (pc.connectionState !== 'connected') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      });
    }
    return frames;
  });
}

/** @param {import('puppeteer-core').Page} page @param {string} who */
async function ffFramesRise(page, who) {
  const a = await ffFrames(page);
  await new Promise((r) => setTimeout(r, 1_500));
  const b = await ffFrames(page);
  assert.ok(b > a, `${who}: framesDecoded rises (${a} -> ${b})`);
}

/**
 * Clicks what `selector` finds once it is visible. A locator, not an element handle: the
 * dashboard re-renders its session list (a handle found just before would be detached).
 * @param {import('puppeteer-core').Page} page @param {string} selector
 */
async function ffClick(page, selector) {
  await page.locator(selector).setTimeout(20_000).click();
}

test('k1) Firefox patient, Chromium kiné', { skip }, async () => {
  const api = await kineApi();
  const p = await api.patient({ name: 'Mme Firefox', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kineCtx = await newContext(chromium, 'kine');
  const kine = await kineCtx.newPage();
  await loginDashboard(kine);
  await kineJoins(kine, session.id);

  const page = await ffPage(await /** @type {import('puppeteer-core').Browser} */ (firefox).newPage());
  await page.goto(link.url);
  await ffClick(page, '[data-screen="intro"] button.btn-primary');
  await ffClick(page, '[data-screen="devices"] button.btn-primary');
  await page.waitForSelector('[data-screen="call"]', { timeout: 20_000 });
  await Promise.all([ffConnected(page), waitConnected(kine, 30_000)]);
  await ffFramesRise(page, 'Firefox patient');
  await assertFramesRise(kine, 'Chromium kiné');

  // The chat crosses engines on the data channel.
  await waitChannel(kine, 20_000);
  await page.waitForFunction(() => /** @type {any} */ (window).__pcs.some((/** @type {RTCPeerConnection} */ pc) => pc.sctp?.state === 'connected'), { timeout: 20_000 });
  await kine.locator('#call-layer .ctl-chat').click();
  await kine.locator('#call-layer .chat-input').fill('Bonjour depuis Chromium');
  await kine.locator('#call-layer .chat-input').press('Enter');
  await page.waitForSelector('.chat-badge:not([hidden])', { timeout: 10_000 });
  await ffClick(page, '.ctl-chat');
  await page.waitForFunction(() => [...document.querySelectorAll('.chat-them')].some((e) => e.textContent?.includes('Bonjour depuis Chromium')), { timeout: 10_000 });
  await page.type('.chat-input', 'Bonjour depuis Firefox');
  await page.keyboard.press('Enter');
  await kine.locator('#call-layer .chat-them').getByText('Bonjour depuis Firefox').waitFor({ timeout: 10_000 });
  await page.screenshot({ path: `${process.cwd()}/screenshots/patient-30-firefox-call.png` });

  await kineEnds(kine);
  await page.waitForSelector('[data-screen="ended"]', { timeout: 15_000 });
  await page.close();
  await kineCtx.close();
});

test('k2) Firefox kiné, Chromium patient', { skip }, async () => {
  const s = server();
  const api = await kineApi();
  const p = await api.patient({ name: 'M. Chromium', consent: true });
  const session = await api.session(p.id, { autoAdmit: true });
  const link = await api.link(session.id);

  const kine = await ffPage(await /** @type {import('puppeteer-core').Browser} */ (firefox).newPage());
  await kine.setViewport({ width: 1366, height: 768 });
  await kine.goto(`${s.url}/app`);
  await kine.waitForSelector('input[name="email"]');
  await kine.type('input[name="email"]', s.email);
  await kine.type('input[name="password"]', s.password);
  await ffClick(kine, 'form button[type="submit"]');
  await ffClick(kine, `tr[data-session="${session.id}"] [data-action="join"]`);
  await kine.waitForSelector('#call-layer .call', { timeout: 20_000 });

  const ctx = await newContext(chromium, 'patient');
  const page = await ctx.newPage();
  await patientToJoin(page, link.url);
  await screen(page, 'call');
  await Promise.all([waitConnected(page, 30_000), ffConnected(kine)]);
  await assertFramesRise(page, 'Chromium patient');
  await ffFramesRise(kine, 'Firefox kiné');
  await shot(page, 'patient-31-with-firefox-kine');

  await ffClick(kine, '#call-layer .ctl-hangup');
  await ffClick(kine, 'dialog.confirm[open] [data-answer="yes"]');
  await screen(page, 'ended');
  await kine.close();
  await ctx.close();
});
