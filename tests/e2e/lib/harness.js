// Shared pieces of the browser tests: the running server (started by run.sh), Debian Chromium with
// fake media devices, REST set-up helpers, WebRTC probes, axe checks and screenshots.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, request } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

/** @typedef {import('playwright-core').Browser} Browser */
/** @typedef {import('playwright-core').BrowserContext} BrowserContext */
/** @typedef {import('playwright-core').Page} Page */
/** @typedef {import('playwright-core').APIRequestContext} APIRequestContext */

const here = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(here, '..', 'screenshots');
export const PHONE = { width: 390, height: 844 };

/**
 * What run.sh passes: the server's TELESOIN_READY line and the embedding host's port.
 * @typedef {{url: string, dashboard_url: string, email: string, password: string, patient_link?: string}} Ready
 */

/** @returns {Ready & {hostPort: number}} */
export function server() {
  const raw = process.env.E2E_READY;
  if (!raw) throw new Error('E2E_READY is not set: run the tests with tests/e2e/run.sh');
  /** @type {Ready} */
  const ready = JSON.parse(raw);
  // The certificate is for localhost; the server listens on 127.0.0.1.
  const url = ready.url.replace('127.0.0.1', 'localhost').replace(/\/$/, '');
  return { ...ready, url, hostPort: Number(process.env.E2E_HOST_PORT ?? 0) };
}

/**
 * Debian Chromium, headless, with fake camera and microphone (and a fake screen to share).
 * @param {{cameras?: number, fakeDevices?: boolean, fakeUi?: boolean}} [o] `cameras`: how many fake
 *   cameras (2: a phone's front and back); `fakeDevices: false`: the machine's real devices (none here)
 */
export async function launch(o = {}) {
  const fake = o.fakeDevices ?? true;
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      ...(fake ? [o.cameras ? `--use-fake-device-for-media-stream=device-count=${o.cameras}` : '--use-fake-device-for-media-stream'] : []),
      ...((o.fakeUi ?? true) ? ['--use-fake-ui-for-media-stream', '--auto-accept-this-tab-capture', '--auto-select-desktop-capture-source=Entire screen'] : []),
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--ignore-certificate-errors',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

// Runs in every page before its own scripts: keeps every RTCPeerConnection and counts camera
// requests, so that tests can read connection states and getStats without a hook in the product.
const PROBE = () => {
  const w = /** @type {any} */ (window);
  w.__pcs = [];
  w.__dcs = [];
  w.__gum = 0;
  w.__streams = [];
  w.__csp = [];
  const Native = window.RTCPeerConnection;
  if (Native) {
    const Wrapped = function (/** @type {any} */ cfg) {
      const pc = new Native(cfg);
      w.__pcs.push(pc);
      // Every data channel, opened here or by the other side, with the connection it belongs to.
      const create = pc.createDataChannel.bind(pc);
      pc.createDataChannel = (/** @type {string} */ label, /** @type {RTCDataChannelInit | undefined} */ init) => {
        const dc = create(label, init);
        w.__dcs.push({ pc, dc });
        return dc;
      };
      pc.addEventListener('datachannel', (/** @type {RTCDataChannelEvent} */ e) => w.__dcs.push({ pc, dc: e.channel }));
      return pc;
    };
    Wrapped.prototype = Native.prototype;
    Object.setPrototypeOf(Wrapped, Native);
    w.RTCPeerConnection = Wrapped;
  }
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = async (c) => {
      w.__gum += 1;
      const stream = await gum(c);
      w.__streams.push(stream);
      return stream;
    };
  }
  document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
};

/**
 * @param {Browser} browser
 * @param {'patient' | 'kine' | 'host'} who
 */
export async function newContext(browser, who) {
  const ctx = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: who === 'patient' ? PHONE : { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    locale: 'fr-FR',
    timezoneId: 'Europe/Paris',
    permissions: ['camera', 'microphone'],
  });
  if (who === 'kine') await ctx.grantPermissions(['camera', 'microphone', 'clipboard-read', 'clipboard-write'], { origin: server().url });
  await ctx.addInitScript(PROBE);
  return ctx;
}

/**
 * Every WebSocket frame a page sends or receives (the signaling socket), to show what never goes
 * through the server. Attach before the page opens its socket.
 * @param {Page} page
 * @returns {string[]}
 */
export function recordSocketFrames(page) {
  /** @type {string[]} */
  const frames = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => frames.push(String(f.payload)));
    ws.on('framereceived', (f) => frames.push(String(f.payload)));
  });
  return frames;
}

/** Records every `data-screen` the patient flow shows, in order, in `window.__screens`. @param {Page} page */
export async function recordScreens(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__screens = [];
    const note = () => {
      const s = document.querySelector('[data-screen]')?.getAttribute('data-screen');
      if (s && w.__screens[w.__screens.length - 1] !== s) w.__screens.push(s);
    };
    note();
    new MutationObserver(note).observe(document.body, { childList: true, subtree: true });
  });
}

/**
 * Waits until the page's peer-to-peer data channel is open on a connected connection, so that the
 * chat and the microphone/camera states can be sent. On a timeout, says what each connection and
 * channel was doing.
 * @param {Page} page
 */
export async function waitChannel(page, timeout = 15_000) {
  try {
    await page.waitForFunction(
      () =>
        /** @type {{pc: RTCPeerConnection, dc: RTCDataChannel}[]} */ (/** @type {any} */ (window).__dcs).some(
          ({ pc, dc }) => dc.label === 'telesoin' && dc.readyState === 'open' && pc.connectionState === 'connected',
        ),
      null,
      { timeout, polling: 100 },
    );
  } catch (e) {
    throw new Error(`data channel not open after ${timeout} ms: ${await peerStates(page)}`, { cause: e });
  }
}

/** What the page's connections and data channels are doing, for failure messages. @param {Page} page */
export async function peerStates(page) {
  return page
    .evaluate(() => {
      const w = /** @type {any} */ (window);
      return /** @type {RTCPeerConnection[]} */ (w.__pcs)
        .map((pc, i) => {
          const dcs = /** @type {{pc: RTCPeerConnection, dc: RTCDataChannel}[]} */ (w.__dcs).filter((x) => x.pc === pc).map((x) => `${x.dc.label}:${x.dc.readyState}`);
          return `pc${i} conn=${pc.connectionState} ice=${pc.iceConnectionState} sig=${pc.signalingState} sctp=${pc.sctp?.state ?? 'none'} dtls=${pc.sctp?.transport.state ?? 'none'} channels=[${dcs.join(',')}]`;
        })
        .join('; ');
    })
    .catch((/** @type {Error} */ e) => `(page gone: ${e.message})`);
}

/**
 * What overflows the viewport sideways, and whether the page scrolls sideways at all.
 * @param {Page} page
 * @returns {Promise<string[]>} descriptions of visible controls cut by the viewport's sides
 */
export async function overflow(page) {
  return page.evaluate(() => {
    const out = [];
    const w = window.innerWidth;
    if (document.documentElement.scrollWidth > w + 1) out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${w}`);
    for (const el of document.querySelectorAll('button, a, input, select, textarea, h1, .ctl, .call-quality, .call-timer')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden') continue;
      if (el.closest('.visually-hidden')) continue;
      if (r.left < -1 || r.right > w + 1) out.push(`${el.tagName.toLowerCase()}.${el.className} [${Math.round(r.left)}, ${Math.round(r.right)}] (${(el.textContent ?? '').trim().slice(0, 40)})`);
    }
    return out;
  });
}

/** Collects console errors and CSP violations of a page; `check()` fails on any CSP violation. @param {Page} page */
export function watchPage(page) {
  /** @type {string[]} */
  const csp = [];
  page.on('console', (msg) => {
    const text = msg.text();
    if (process.env.E2E_DEBUG) console.error(`[${page.url().slice(0, 40)}] ${msg.type()}: ${text}`);
    if (/Content Security Policy/i.test(text)) csp.push(text);
  });
  page.on('pageerror', (err) => {
    if (process.env.E2E_DEBUG) console.error(`[${page.url().slice(0, 40)}] pageerror: ${err.message}`);
    csp.push(`pageerror: ${err.message}`);
  });
  return {
    check() {
      assert.deepEqual(csp, [], `no CSP violation or script error on ${page.url()}`);
    },
  };
}

/** A REST client logged in as the demo kiné. */
export async function kineApi() {
  const s = server();
  // Sent by browsers on every POST; the server refuses state changes from another origin.
  const api = await request.newContext({ baseURL: s.url, ignoreHTTPSErrors: true, extraHTTPHeaders: { Origin: new URL(s.url).origin } });
  const res = await api.post('/api/login', { data: { email: s.email, password: s.password } });
  assert.equal(res.status(), 200, `login: ${await res.text()}`);
  const csrf = res.headers()['x-csrf-token'] ?? '';
  return new Api(api, csrf);
}

export class Api {
  /** @param {APIRequestContext} ctx @param {string} csrf the session's CSRF token */
  constructor(ctx, csrf) {
    this.ctx = ctx;
    this.csrf = csrf;
  }

  /** @param {string} path @param {unknown} [body] */
  async post(path, body) {
    const res = await this.ctx.post(path, { data: body ?? {}, headers: { 'X-CSRF-Token': this.csrf } });
    const text = await res.text();
    assert.ok(res.ok(), `POST ${path} -> ${res.status()} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** @param {string} path */
  async get(path) {
    const res = await this.ctx.get(path);
    const text = await res.text();
    assert.ok(res.ok(), `GET ${path} -> ${res.status()} ${text}`);
    return JSON.parse(text);
  }

  /**
   * A patient ready for télésoin unless told otherwise.
   * @param {{name: string, birth?: string, autonomy?: boolean, inPerson?: boolean, consent?: boolean, representative?: {name: string, relation: string}, prescription?: boolean}} p
   *   `representative`: for a minor, the legal representative who consents (required then)
   */
  async patient(p) {
    const patient = await this.post('/api/patients', { display_name: p.name, birth_date: p.birth ?? '1958-03-14', loss_of_autonomy: p.autonomy ?? false, gp_contact: 'Dr Martin, Guéret' });
    if (p.inPerson ?? true) await this.post(`/api/patients/${patient.id}/visits`, { date: daysAgo(30), kind: 'bilan' });
    if (p.consent ?? false) {
      const rep = p.representative ? { representative_name: p.representative.name, representative_relation: p.representative.relation } : {};
      await this.post(`/api/patients/${patient.id}/consents`, { text_version: '2026-11-v1', method: 'oral', ...rep });
    }
    if (p.prescription ?? true) await this.post(`/api/patients/${patient.id}/prescriptions`, { date: daysAgo(40) });
    return patient;
  }

  /**
   * @param {string} patient
   * @param {{autoAdmit?: boolean, consentOnJoin?: boolean, startsAt?: Date, hnPriceCents?: number}} [o]
   *   `hnPriceCents`: the session's own price when it is hors nomenclature (a patient without prescription)
   */
  async session(patient, o = {}) {
    const acts = await this.get('/api/acts');
    return this.post('/api/sessions', {
      patient,
      starts_at: (o.startsAt ?? new Date()).toISOString(),
      act_code: acts[0].code,
      auto_admit: o.autoAdmit ?? false,
      patient_consent_on_join: o.consentOnJoin ?? true,
      ...(o.hnPriceCents === undefined ? {} : { hn_price_cents: o.hnPriceCents }),
    });
  }

  /**
   * Waits until the server's record of `session` counts at least `seconds` billable seconds
   * (both sides connected with video flowing both ways, as persisted by the server). Tests that
   * end a call and expect it billed wait on this evidence, not on a fixed delay: on a loaded
   * machine the clients' video reports may come a few seconds after the connection.
   * @param {string} session @param {number} [seconds] @param {number} [timeout]
   */
  async billableAtLeast(session, seconds = 1, timeout = 30_000) {
    const until = Date.now() + timeout;
    /** @type {any} */
    let record = null;
    while (Date.now() < until) {
      record = await this.get(`/api/sessions/${session}/record`);
      if ((record.provisional_seconds ?? 0) >= seconds) return record;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`session ${session}: ${record?.provisional_seconds} billable seconds after ${timeout} ms, wanted ${seconds} (events: ${JSON.stringify(record?.events?.map((/** @type {any} */ e) => e.kind))})`);
  }

  /** @param {string} session @returns {Promise<{url: string, token: string, participant: string}>} */
  async link(session) {
    const link = await this.post(`/api/sessions/${session}/links`, { role: 'patient' });
    return { ...link, url: link.url.replace('127.0.0.1', 'localhost') };
  }
}

/** @param {number} n @returns {string} YYYY-MM-DD, n days before today */
export function daysAgo(n) {
  const d = new Date(Date.now() - n * 86_400_000);
  return d.toISOString().slice(0, 10);
}

/** Logs the demo kiné into the dashboard. @param {Page} page */
export async function loginDashboard(page) {
  const s = server();
  await page.goto(`${s.url}/app`);
  await page.getByLabel('Adresse e-mail').fill(s.email);
  await page.getByLabel('Mot de passe').fill(s.password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.getByRole('heading', { name: /Séances du/ }).waitFor();
}

/**
 * Opens a session's call from the dashboard as the kiné (the "join the call" button of its row).
 * @param {Page} page
 * @param {string} sessionId
 */
export async function kineJoins(page, sessionId) {
  // The list of the session's own day (the page's time zone, Europe/Paris): a session made
  // "in two hours" late in the evening is tomorrow's, not on today's list.
  await page.goto(`${server().url}/app#/sessions`);
  const day = await page.evaluate(async (id) => {
    const r = await fetch(`/api/sessions/${id}`, { credentials: 'same-origin' });
    if (!r.ok) return null;
    const d = new Date((await r.json()).starts_at);
    const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  }, sessionId);
  if (day) await page.goto(`${server().url}/app#/sessions?day=${day}`);
  await page.locator(`tr[data-session="${sessionId}"] [data-action="join"]`).click();
  await page.locator('#call-layer .call').waitFor();
}

/** Waits until one of the page's RTCPeerConnections is connected. @param {Page} page */
export async function waitConnected(page, timeout = 20_000) {
  await page.waitForFunction(() => /** @type {any} */ (window).__pcs.some((/** @type {RTCPeerConnection} */ pc) => pc.connectionState === 'connected'), null, { timeout, polling: 100 });
}

/** Sum of framesDecoded of the remote video over the page's connected peer connections. @param {Page} page */
export async function framesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    for (const pc of /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs)) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      });
    }
    return frames;
  });
}

/** Asserts that remote video frames keep arriving between two samples. @param {Page} page @param {string} who */
export async function assertFramesRise(page, who) {
  const a = await framesDecoded(page);
  await page.waitForTimeout(1_200);
  const b = await framesDecoded(page);
  assert.ok(b > a, `${who}: framesDecoded rises (${a} -> ${b})`);
  return b;
}

/** No serious or critical accessibility violation. @param {Page} page @param {string} name */
export async function checkAxe(page, name) {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(summary, [], `axe on ${name}`);
}

/** @param {Page} page @param {string} name */
export async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** Waits for the patient flow to show a screen. @param {Page} page @param {string} name */
export async function screen(page, name, timeout = 15_000) {
  await page.locator(`[data-screen="${name}"]`).waitFor({ timeout });
}

/**
 * The patient's way to the join click: intro -> devices -> "join".
 * @param {Page} page
 * @param {string} url
 * @param {(step: string) => Promise<void>} [atEachStep] screenshots and axe checks
 */
export async function patientToJoin(page, url, atEachStep = async () => {}) {
  await page.goto(url);
  await screen(page, 'intro');
  await atEachStep('intro');
  await page.getByRole('button', { name: 'Vérifier ma caméra et mon micro' }).click();
  await screen(page, 'devices');
  await atEachStep('devices');
  await page.getByRole('button', { name: 'Tout fonctionne : rejoindre la séance' }).click();
}

/** The time from the join click to the first remote frame, in ms, from the page's marks. @param {Page} page */
export async function joinToFirstFrame(page, timeout = 20_000) {
  await page.waitForFunction(() => performance.getEntriesByName('telesoin:first-remote-frame').length > 0, null, { timeout, polling: 50 });
  return page.evaluate(() => {
    const click = performance.getEntriesByName('telesoin:join-click')[0];
    const frame = performance.getEntriesByName('telesoin:first-remote-frame')[0];
    return frame.startTime - click.startTime;
  });
}

/** The kiné ends the session: "Terminer la séance", then the confirmation. @param {Page} page */
export async function kineEnds(page) {
  await page.locator('#call-layer .ctl-hangup').click();
  await page.locator('dialog.confirm[open] [data-answer="yes"]').click();
}

/** The patient hangs up: "Raccrocher", then the confirmation. @param {Page} page */
export async function patientHangsUp(page) {
  await page.locator('.ctl-hangup').click();
  await page.locator('dialog.confirm[open] [data-answer="yes"]').click();
}

/** Waits (up to `timeout`) until remote video frames advance, e.g. after a camera switch. @param {Page} page @param {string} who */
export async function waitFramesRise(page, who, timeout = 10_000) {
  const start = await framesDecoded(page);
  const until = Date.now() + timeout;
  let now = start;
  while (Date.now() < until) {
    await page.waitForTimeout(300);
    now = await framesDecoded(page);
    if (now > start) return;
  }
  assert.fail(`${who}: framesDecoded stays at ${start} for ${timeout} ms (now ${now})`);
}
