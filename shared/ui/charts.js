// Hand-written inline SVG charts, each with a title, a description, a text summary and its
// data as a table, so that nothing is told by the picture alone.

import { h, s, newId, fmtDay } from './dom.js';

const W = 640, H = 220, L = 56, R = 14, T = 14, B = 30;

/**
 * A line chart. xLabels: the UTC days; series: [{name, cls, values: [number|null]}];
 * yMax: the top of the axis; yFmt: a value as text.
 */
export function lineChart({ title, desc, summary, xLabels, series, yMax, yFmt }) {
  const tid = newId('chart-t'), did = newId('chart-d');
  const n = xLabels.length;
  const iw = W - L - R, ih = H - T - B;
  const top = yMax > 0 ? yMax : 1;
  const x = (i) => L + (n > 1 ? (i * iw) / (n - 1) : iw / 2);
  const y = (v) => T + ih - (Math.min(v, top) / top) * ih;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': tid + ' ' + did, class: 'chart', focusable: 'false' },
    s('title', { id: tid }, title), s('desc', { id: did }, desc));
  for (const f of [0, 0.5, 1]) {
    const yy = y(top * f);
    svg.append(s('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid-line' }),
      s('text', { x: L - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis' }, yFmt(top * f)));
  }
  const ticks = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
  for (const i of ticks) {
    svg.append(s('text', { x: x(i), y: H - 8, 'text-anchor': n === 1 ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle', class: 'axis' }, fmtDay(xLabels[i])));
  }
  for (const ser of series) {
    const g = s('g', { class: 'series ' + ser.cls });
    let seg = [];
    const flush = () => { if (seg.length > 1) g.append(s('polyline', { points: seg.join(' '), fill: 'none' })); seg = []; };
    ser.values.forEach((v, i) => {
      if (v === null || v === undefined) { flush(); return; }
      seg.push(x(i).toFixed(1) + ',' + y(v).toFixed(1));
    });
    flush();
    ser.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      g.append(s('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3.5 },
        s('title', null, ser.name + ' on ' + fmtDay(xLabels[i]) + ': ' + yFmt(v))));
    });
    svg.append(g);
  }
  const legend = h('ul', { class: 'legend' }, series.map((ser) => h('li', null, h('span', { class: 'swatch ' + ser.cls }), ser.name)));
  const table = h('table', { class: 'grid compact' },
    h('caption', { class: 'sr-only' }, title + ', by day'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Day'), series.map((ser) => h('th', { scope: 'col' }, ser.name)))),
    h('tbody', null, xLabels.map((d, i) => h('tr', null, h('th', { scope: 'row' }, fmtDay(d)),
      series.map((ser) => h('td', { class: 'num' }, ser.values[i] === null || ser.values[i] === undefined ? '—' : yFmt(ser.values[i])))))));
  return h('figure', { class: 'chart-fig' },
    svg, legend,
    h('figcaption', null, summary),
    h('details', null, h('summary', null, 'Show the data'), h('div', { class: 'table-wrap' }, table)));
}

/** The last outcomes (`PPFP`, oldest first) as a strip of lettered boxes. */
export function outcomeStrip(outcomes) {
  const words = [...(outcomes || '')].map((c) => (c === 'P' ? 'passed' : 'failed'));
  const text = words.length
    ? 'Last ' + words.length + ' outcomes, oldest first: ' + words.join(', ')
    : 'No outcomes yet';
  const el = h('div', { class: 'outcomes', role: 'img', 'aria-label': text, title: text });
  for (const c of outcomes || '') el.append(h('span', { class: c === 'P' ? 'o-pass' : 'o-fail' }, c));
  if (!words.length) el.append(h('span', { class: 'muted small' }, 'none yet'));
  return el;
}
