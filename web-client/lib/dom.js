// A tiny DOM builder. No innerHTML anywhere: text is always text, so nothing the server or a
// patient name carries can become markup.

import { bind, bindAttr } from './i18n.js';

/** @typedef {import('./i18n.js').Key} Key */
/** @typedef {Node | string | null | undefined | false} Child */

/**
 * @typedef {object} Props
 * @property {string} [class]
 * @property {Key} [t] text from the i18n module (kept translated)
 * @property {Record<string, string | number>} [tp] parameters of `t`
 * @property {Record<string, Key>} [ta] attributes from the i18n module, e.g. {'aria-label': 'call.hangup'}
 * @property {Record<string, (e: any) => void>} [on] event listeners
 * @property {Record<string, string | number | boolean | null | undefined>} [attrs] other attributes; false/null/undefined omit
 */

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.attrs) {
    for (const [name, value] of Object.entries(props.attrs)) {
      if (value === false || value === null || value === undefined) continue;
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  if (props.ta) for (const [attr, key] of Object.entries(props.ta)) bindAttr(el, attr, key);
  if (props.on) for (const [type, fn] of Object.entries(props.on)) el.addEventListener(type, fn);
  if (props.t) bind(el, props.t, props.tp);
  append(el, children);
  return el;
}

/** @param {Element} el @param {Child[]} children */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** Replaces an element's content. @param {Element} el @param {...Child} children */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * A labelled form field: <div class="field"><label for=id>…</label><input id=id …></div>.
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {Key} label
 * @returns {HTMLDivElement}
 */
export function field(control, label) {
  if (!control.id) control.id = uid('f');
  const isCheck = control instanceof HTMLInputElement && (control.type === 'checkbox' || control.type === 'radio');
  const lab = h('label', { t: label, attrs: { for: control.id } });
  return isCheck ? h('div', { class: 'field field-check' }, control, lab) : h('div', { class: 'field' }, lab, control);
}

let counter = 0;
/** @param {string} prefix */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * Moves focus to a screen's heading so that screen readers announce the new step.
 * @param {ParentNode} root
 */
export function focusHeading(root) {
  const heading = root.querySelector('h1, h2');
  if (heading instanceof HTMLElement) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: false });
  }
}

/**
 * Asks before an action that cannot be undone (hang up, end the session): a modal <dialog> with
 * the safe choice focused first. Escape and the safe button answer no.
 * @param {{title: Key, text: Key, yes: Key, no: Key, danger?: boolean, params?: Record<string, string | number>}} o
 * @returns {Promise<boolean>}
 */
export function confirmDialog(o) {
  const titleId = uid('dlg');
  const yes = h('button', { class: `btn ${o.danger ? 'btn-danger' : 'btn-primary'}`, t: o.yes, attrs: { type: 'button', 'data-answer': 'yes' } });
  const no = h('button', { class: 'btn btn-secondary', t: o.no, attrs: { type: 'button', 'data-answer': 'no' } });
  const dialog = h(
    'dialog',
    { class: 'confirm', attrs: { 'aria-labelledby': titleId } },
    h('h2', { t: o.title, tp: o.params, attrs: { id: titleId } }),
    h('p', { t: o.text, tp: o.params }),
    h('div', { class: 'row confirm-actions' }, no, yes),
  );
  // Inside a full-screen element when there is one, so that it shows there too.
  (document.fullscreenElement ?? document.body).append(dialog);
  return new Promise((resolve) => {
    let answered = false;
    /** @param {boolean} answer */
    const done = (answer) => {
      if (answered) return;
      answered = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    dialog.addEventListener('close', () => done(false));
    dialog.showModal();
    no.focus();
  });
}
