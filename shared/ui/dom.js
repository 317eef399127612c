// DOM building (createElement/textContent only: API data never goes through innerHTML),
// formatting, and the shared pieces: status badges, progress, problems, messages.

/**
 * h('a', {href, class, dataset: {...}, onclick: fn, 'aria-label': ...}, ...children)
 * Strings and numbers become text nodes; null/false children are skipped; arrays are flattened.
 */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  if (props) setProps(el, props);
  append(el, kids);
  return el;
}

function setProps(el, props) {
  for (const k in props) {
    const v = props[k];
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'max') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
}

export function append(el, kids) {
  for (const kid of kids) {
    if (kid === null || kid === undefined || kid === false) continue;
    if (Array.isArray(kid)) append(el, kid);
    else el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) el.setAttribute(k, attrs[k]);
  append(el, kids);
  return el;
}

let uid = 0;
export const newId = (prefix) => prefix + '-' + ++uid;

// ---- formatting (the browser's locale and time zone) ----

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

export function fmtTime(iso, short = false) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : (short ? shortTime : dateTime).format(d);
}
/** A UTC calendar day (`2026-11-26`) as a short date. */
export function fmtDay(day) {
  const d = new Date(day + 'T00:00:00Z');
  return isNaN(d) ? day : dayFmt.format(d);
}
export function timeEl(iso, short = false) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: fmtTime(iso) + ' (' + timeZone + ')' }, fmtTime(iso, short));
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const sec = ms / 1000;
  if (sec < 60) return (sec < 10 ? sec.toFixed(2) : sec.toFixed(1)) + ' s';
  const m = Math.floor(sec / 60), rs = Math.floor(sec % 60);
  if (m < 60) return m + ' min ' + String(rs).padStart(2, '0') + ' s';
  const hr = Math.floor(m / 60);
  return hr + ' h ' + String(m % 60).padStart(2, '0') + ' min';
}
export const fmtPercent = (x, digits = 0) => (x === null || x === undefined ? '—' : (x * 100).toFixed(digits) + ' %');

// ---- statuses ----

export const TERMINAL = new Set(['passed', 'failed', 'cancelled', 'timed_out', 'error', 'skipped']);
export const FAILING = new Set(['failed', 'error', 'timed_out']);
export const EXECUTION_STATUSES = ['pending', 'queued', 'running', 'passed', 'failed', 'cancelled', 'timed_out', 'error', 'skipped'];
const RANK = { pending: 0, queued: 1, running: 2 };
/** Statuses only move forward: a replayed (older) event must not move one back. */
export const rank = (status) => (status in RANK ? RANK[status] : 3);
export const label = (status) => String(status || 'unknown').replace(/_/g, ' ');

export function badge(status, extra) {
  return h('span', { class: 'badge st-' + (status || 'unknown') + (extra ? ' ' + extra : '') }, label(status));
}

export function progressText(p) {
  if (!p) return '';
  let t = p.completed + ' of ' + p.total;
  const parts = [];
  if (p.passed) parts.push(p.passed + ' passed');
  if (p.failed) parts.push(p.failed + ' failed');
  if (p.errored) parts.push(p.errored + ' errored');
  if (p.skipped) parts.push(p.skipped + ' skipped');
  if (parts.length) t += ' (' + parts.join(', ') + ')';
  return t;
}

/**
 * A progress bar with its text. The bar is a plain element whose fill width is set from JS
 * (cheaper to lay out than <progress> in a 1,000-row table, and allowed by the CSP); in lists
 * the text says it all, so the bar is hidden from assistive tech; `full` (a run's header)
 * makes it a named progressbar and adds the per-outcome counts.
 */
export function progressEl(p, full = false) {
  const pct = p ? Math.max(0, Math.min(100, p.percent || 0)) : 0;
  const fill = h('span', { class: 'fill' });
  fill.style.width = pct + '%';
  const bar = full
    ? h('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': pct.toFixed(1), 'aria-label': 'Progress', 'aria-valuetext': progressText(p) }, fill)
    : h('span', { class: 'bar', 'aria-hidden': 'true' }, fill);
  const text = p ? (full ? progressText(p) : p.completed + '/' + p.total) : '';
  return h('span', { class: 'prog' }, bar, h('span', { class: 'prog-text' }, text));
}

// ---- messages and problems ----

export function msg(text, kind = 'info') {
  return h('p', { class: 'msg ' + kind, role: 'status' }, text);
}

/** A problem (ApiError or any Error) as a clear alert box. */
export function problemBox(err, lead) {
  const p = (err && err.problem) || { title: 'Something went wrong', detail: err && err.message };
  const box = h('div', { class: 'problem', role: 'alert', 'data-testid': 'error' });
  append(box, [
    h('p', { class: 'problem-title' }, (lead ? lead + ': ' : '') + (p.title || 'Error') + (p.status ? ' (' + p.status + ')' : '')),
    p.detail ? h('p', null, p.detail) : null,
  ]);
  if (Array.isArray(p.errors) && p.errors.length) {
    box.append(h('ul', null, p.errors.map((e) => h('li', null, h('code', null, e.field || '(body)'), ': ' + e.message))));
  }
  if (p.code) box.append(h('p', { class: 'small muted' }, 'Code: ', h('code', null, p.code)));
  return box;
}

/** A table inside a horizontally scrollable, keyboard-focusable region. */
export function tableWrap(table, name) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': name, tabindex: '0' }, table);
}

export function setTitle(t) { document.title = t ? t + ' · runledger' : 'runledger'; }

/** Downloads a fetch Response as a file through a Blob URL. */
export async function download(res, fallbackName) {
  const blob = await res.blob();
  const cd = res.headers.get('content-disposition') || '';
  const m = /filename="?([^";]+)"?/i.exec(cd);
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: (m && m[1]) || fallbackName, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
