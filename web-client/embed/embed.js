// <telesoin-call token="…"> for platforms: include https://HOST/embed.js with a plain <script> tag
// (a classic script, so that no CORS is needed) and place the element where the call should be.
//
// The element opens https://HOST/embed/ in an iframe allowed to use the camera and the microphone,
// hands it the token by postMessage once the frame says it is ready (the token never goes into a
// URL), and re-dispatches the frame's reports as DOM events on itself:
//   ready, waiting {reason}, admitted, connected, reconnecting, ended {billable_seconds, reason},
//   refused {code, message_fr, message_en}
// The same reports reach the host window as postMessage {source: 'telesoin', event, …} from the
// frame, which only addresses origins on the server's embed allowlist. See docs/embedding.md.
//
// This file imports nothing (a module import from another origin would need CORS), so the one text
// it carries, the frame's accessible name, is the default of the i18n key 'embed.title'; a host page
// can set its own with the `label` attribute.

(() => {
  const script = document.currentScript;
  const serverOrigin = new URL(script instanceof HTMLScriptElement && script.src ? script.src : location.href).origin;
  const EVENTS = ['ready', 'waiting', 'admitted', 'connected', 'reconnecting', 'ended', 'refused'];
  const DEFAULT_LABEL = { fr: 'Séance de télésoin', en: 'Telehealth session' };

  class TelesoinCall extends HTMLElement {
    static get observedAttributes() {
      return ['token'];
    }

    constructor() {
      super();
      /** @type {HTMLIFrameElement | null} */
      this.frame = null;
      this.root = this.attachShadow({ mode: 'closed' });
      /** @param {MessageEvent} e */
      this.onMessage = (e) => {
        if (!this.frame || e.source !== this.frame.contentWindow || e.origin !== serverOrigin) return;
        const data = e.data;
        if (!data || data.source !== 'telesoin' || typeof data.event !== 'string' || !EVENTS.includes(data.event)) return;
        if (data.event === 'ready') this.sendToken();
        const { source: _source, event, ...detail } = data;
        this.dispatchEvent(new CustomEvent(event, { detail, bubbles: true, composed: true }));
      };
    }

    connectedCallback() {
      window.addEventListener('message', this.onMessage);
      if (getComputedStyle(this).display === 'inline') {
        // Only when the host page gave no layout: a block that a call fits in.
        this.style.setProperty('display', 'block');
        this.style.setProperty('min-height', '520px');
      }
      this.build();
    }

    disconnectedCallback() {
      window.removeEventListener('message', this.onMessage);
      this.frame?.remove();
      this.frame = null;
    }

    attributeChangedCallback() {
      // A new token means a new call: start over.
      if (this.isConnected) this.build();
    }

    build() {
      this.frame?.remove();
      if (!this.getAttribute('token')) return;
      const frame = document.createElement('iframe');
      frame.src = `${serverOrigin}/embed/`;
      frame.allow = 'camera; microphone; autoplay; fullscreen';
      frame.referrerPolicy = 'no-referrer';
      const lang = this.getAttribute('lang') === 'en' ? 'en' : 'fr';
      frame.title = this.getAttribute('label') || DEFAULT_LABEL[lang];
      for (const [k, v] of [['display', 'block'], ['width', '100%'], ['height', '100%'], ['min-height', 'inherit'], ['border', '0']]) {
        frame.style.setProperty(k, v);
      }
      this.frame = frame;
      this.root.append(frame);
    }

    sendToken() {
      const token = this.getAttribute('token');
      const lang = this.getAttribute('lang');
      if (!token || !this.frame?.contentWindow) return;
      this.frame.contentWindow.postMessage({ type: 'telesoin:init', token, lang: lang === 'en' ? 'en' : 'fr' }, serverOrigin);
    }
  }

  if (!customElements.get('telesoin-call')) customElements.define('telesoin-call', TelesoinCall);
})();
