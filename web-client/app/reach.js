// Reaching the patient, in the dashboard: the contact card of a patient's file, and on the link
// page the "Envoyer le lien" button with the delivery state of every message of the session.

import { get, post, put } from '../lib/api.js';
import { h, field, replace } from '../lib/dom.js';
import { bind, fmtDateTime, getLang, t } from '../lib/i18n.js';
import { clearFieldErrors, errorAlert, handleError, hintedField, localFieldError, showFormError } from './ui.js';

/** @typedef {import('../lib/i18n.js').Key} Key */
/**
 * @typedef {object} Contact
 * @property {string | null} [phone]
 * @property {string | null} [email]
 * @property {'email' | 'sms' | 'both' | 'none'} preferred_channel
 */
/**
 * @typedef {object} Message
 * @property {string} id
 * @property {'invitation' | 'reminder' | 'cancelled' | 'moved'} kind
 * @property {'email' | 'sms'} channel
 * @property {'pending' | 'sent' | 'failed' | 'skipped' | 'cancelled'} state
 * @property {string} due_at
 * @property {string | null} [detail]
 * @property {string | null} [done_at]
 */
/** @typedef {{email_configured: boolean, sms_configured: boolean, reminder_offsets_minutes: number[]}} ReachSettings */

/**
 * The contact card of a patient's file: phone, e-mail, preferred channel.
 * @param {string} patientId
 * @returns {HTMLElement}
 */
export function contactCard(patientId) {
  const card = h('section', { class: 'card', attrs: { 'aria-labelledby': 'contact-h', 'data-card': 'contact' } }, h('h2', { t: 'app.contact.title', attrs: { id: 'contact-h' } }));
  const phone = h('input', { attrs: { type: 'tel', name: 'phone', autocomplete: 'off', inputmode: 'tel' } });
  const email = h('input', { attrs: { type: 'email', name: 'email', autocomplete: 'off' } });
  /** @type {[string, Key][]} */
  const prefs = [
    ['both', 'app.contact.pref.both'],
    ['sms', 'app.contact.pref.sms'],
    ['email', 'app.contact.pref.email'],
    ['none', 'app.contact.pref.none'],
  ];
  const pref = h('select', { attrs: { name: 'preferred_channel' } }, ...prefs.map(([v, k]) => h('option', { attrs: { value: v }, t: k })));
  const status = h('p', { class: 'hint', attrs: { role: 'status' } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const form = h(
    'form',
    { class: 'stack' },
    error,
    hintedField(phone, 'app.contact.phone', 'app.contact.phone.hint'),
    field(email, 'app.contact.email'),
    field(pref, 'app.contact.preferred'),
    h('button', { class: 'btn btn-secondary', t: 'app.contact.save', attrs: { type: 'submit' } }),
    status,
  );
  /** @param {Contact} c */
  const fill = (c) => {
    phone.value = c.phone ?? '';
    email.value = c.email ?? '';
    pref.value = c.preferred_channel;
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.textContent = '';
    try {
      /** @type {Contact} */
      const saved = await put(`/api/patients/${patientId}/contact`, {
        phone: phone.value.trim() || null,
        email: email.value.trim() || null,
        preferred_channel: pref.value,
      });
      fill(saved);
      error.replaceChildren();
      bind(status, 'app.contact.saved');
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
    }
  });
  card.append(form);
  get(`/api/patients/${patientId}/contact`).then(
    (c) => fill(/** @type {Contact} */ (c)),
    (err) => handleError(err) || card.append(errorAlert(err)),
  );
  return card;
}

/** @param {number} minutes */
function offsetWords(minutes) {
  if (minutes % 1440 === 0) return `${minutes / 1440} ${getLang() === 'en' ? 'd' : 'j'}`;
  if (minutes % 60 === 0) return `${minutes / 60} h`;
  return `${minutes} min`;
}

/**
 * Reads what the kiné typed for reminders ("1 j, 1 h", "2 h, 30 min", minutes alone): the
 * minutes before the session, or null when a part is not understood. Empty: no reminder.
 * @param {string} text
 * @returns {number[] | null}
 */
export function parseOffsets(text) {
  /** @type {number[]} */
  const out = [];
  for (const part of text.split(/[,;]/).map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d{1,5})\s*(j|jours?|d|days?|h|heures?|hours?|min|minutes?|m)?$/i.exec(part);
    if (!m) return null;
    const n = Number(m[1]);
    const unit = (m[2] ?? 'min').toLowerCase();
    out.push(/^(j|d)/.test(unit) ? n * 1440 : /^h/.test(unit) ? n * 60 : n);
  }
  return out;
}

/**
 * The kiné's reminder settings (Facturation page): when reminders go before each session.
 * @param {ReachSettings} settings
 * @returns {HTMLElement}
 */
export function remindersForm(settings) {
  const input = h('input', { attrs: { type: 'text', name: 'reminder_offsets_minutes', autocomplete: 'off', spellcheck: 'false', value: settings.reminder_offsets_minutes.map(offsetWords).join(', ') } });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const status = h('p', { class: 'hint', attrs: { role: 'status' } });
  const channels = h('p', { class: 'hint' });
  bind(channels, settings.email_configured || settings.sms_configured ? 'app.reminders.channels' : 'app.reminders.unconfigured');
  const form = h(
    'form',
    { class: 'card form', attrs: { 'aria-labelledby': 'reminders-h', 'data-card': 'reminders' } },
    h('h2', { t: 'app.reminders.title', attrs: { id: 'reminders-h' } }),
    channels,
    error,
    hintedField(input, 'app.reminders.field', 'app.reminders.hint'),
    h('button', { class: 'btn btn-primary', t: 'app.reminders.save', attrs: { type: 'submit', 'data-action': 'save-reminders' } }),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    error.replaceChildren();
    status.replaceChildren();
    const offsets = parseOffsets(input.value);
    if (offsets === null) {
      localFieldError(input, 'app.reminders.invalid');
      return;
    }
    try {
      /** @type {ReachSettings} */
      const saved = await put('/api/reach', { reminder_offsets_minutes: offsets });
      input.value = saved.reminder_offsets_minutes.map(offsetWords).join(', ');
      bind(status, saved.reminder_offsets_minutes.length ? 'app.reminders.saved' : 'app.reminders.saved.none');
    } catch (err) {
      if (!handleError(err)) showFormError(form, error, err);
    }
  });
  return form;
}

/** @param {Message} m */
function messageLine(m) {
  /** @type {Record<string, Key>} */
  const states = {
    pending: 'app.message.state.pending',
    sent: 'app.message.state.sent',
    failed: 'app.message.state.failed',
    skipped: 'app.message.state.skipped',
    cancelled: 'app.message.state.cancelled',
  };
  const li = h('li', { attrs: { 'data-kind': m.kind, 'data-channel': m.channel, 'data-state': m.state } });
  const render = () =>
    bind(li, 'app.messages.line', {
      kind: t(/** @type {Key} */ (`app.message.kind.${m.kind}`)),
      channel: t(/** @type {Key} */ (`app.message.channel.${m.channel}`)),
      state: t(m.state === 'pending' && m.detail ? 'app.message.state.retrying' : states[m.state], { date: fmtDateTime(m.done_at ?? m.due_at), reason: m.detail ?? '' }),
    });
  render();
  li.classList.add(m.state === 'failed' ? 'alert-error' : 'message');
  return li;
}

/**
 * "Envoyer le lien" and the messages of a session. The button is off, with the reason, when the
 * server cannot send or the patient cannot be reached.
 * @param {string} sessionId
 * @param {string} patientId
 * @returns {HTMLElement}
 */
export function sendCard(sessionId, patientId) {
  const list = h('ul', { class: 'message-list', attrs: { 'aria-live': 'polite' } });
  const why = h('p', { class: 'hint', attrs: { 'data-why': '' } });
  const reminders = h('p', { class: 'hint' });
  const error = h('div', { attrs: { 'aria-live': 'polite' } });
  const button = h('button', { class: 'btn btn-primary', t: 'app.send.button', attrs: { type: 'button', 'data-action': 'send-link', disabled: true } });
  const edit = h('a', { t: 'app.send.contact.edit', attrs: { href: `#/patients/${patientId}` } });
  const card = h(
    'section',
    { class: 'card', attrs: { 'aria-labelledby': 'send-h', 'data-card': 'send' } },
    h('h2', { t: 'app.send.title', attrs: { id: 'send-h' } }),
    error,
    h('div', { class: 'row' }, button),
    why,
    reminders,
    h('h3', { t: 'app.messages.title' }),
    list,
  );
  /** @param {Message[]} messages */
  const showMessages = (messages) => {
    if (!messages.length) replace(list, h('li', { class: 'hint', t: 'app.messages.empty' }));
    else replace(list, ...messages.map(messageLine));
  };
  const load = async () => {
    /** @type {[ReachSettings, Contact, Message[]]} */
    const [settings, contact, messages] = await Promise.all([get('/api/reach'), get(`/api/patients/${patientId}/contact`), get(`/api/sessions/${sessionId}/messages`)]);
    showMessages(messages);
    const offs = settings.reminder_offsets_minutes;
    if (offs.length) bind(reminders, 'app.send.reminders', { list: offs.map(offsetWords).join(', ') });
    else bind(reminders, 'app.send.reminders.none');
    /** @type {Key | null} */
    let reason = null;
    const canEmail = settings.email_configured && !!contact.email && contact.preferred_channel !== 'sms';
    const canSms = settings.sms_configured && !!contact.phone && contact.preferred_channel !== 'email';
    if (!settings.email_configured && !settings.sms_configured) reason = 'app.send.why.not_configured';
    else if (contact.preferred_channel === 'none') reason = 'app.send.why.none';
    else if (!canEmail && !canSms) reason = 'app.send.why.no_contact';
    button.disabled = reason !== null;
    if (reason) {
      bind(why, reason);
      why.append(' ', edit);
    } else {
      why.replaceChildren();
    }
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    bind(why, 'app.send.sending');
    error.replaceChildren();
    try {
      await post(`/api/sessions/${sessionId}/send`, {});
    } catch (err) {
      if (!handleError(err)) error.append(errorAlert(err));
    }
    await load().catch((err) => handleError(err) || error.append(errorAlert(err)));
  });
  void load().catch((err) => handleError(err) || error.append(errorAlert(err)));
  return card;
}
