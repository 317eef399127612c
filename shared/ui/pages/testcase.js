// Test case: its definition, last runs, analytics charts, flakiness and quarantine.

import { api, qs, quarantines } from '../api.js';
import { lineChart, outcomeStrip } from '../charts.js';
import {
  h, badge, progressEl, timeEl, fmtTime, fmtDuration, fmtPercent, fmtDay, msg, problemBox,
  tableWrap, setTitle, timeZone,
} from '../dom.js';

const DAY = 86400000;
const pad = (n) => String(n).padStart(2, '0');
/** A Date as a datetime-local value, in the browser's time zone. */
const localValue = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

export function mount(main, { params, query, navigate }) {
  const id = params[0];
  const path = '/test-cases/' + encodeURIComponent(id);
  let stopped = false;
  setTitle('Test case ' + id);

  const title = h('h1', null, 'Test case');
  const defSection = h('section', { class: 'card', 'aria-labelledby': 'def-h' }, h('h2', { id: 'def-h' }, 'Definition'), msg('Loading…'));
  const qSection = h('section', { class: 'card', 'aria-labelledby': 'q-h', 'data-testid': 'quarantine-form' }, h('h2', { id: 'q-h' }, 'Quarantine'), msg('Loading…'));
  const flakySection = h('section', { class: 'card', 'aria-labelledby': 'fl-h' }, h('h2', { id: 'fl-h' }, 'Flakiness'), msg('Loading…'));
  const chartsSection = h('section', { class: 'card', 'aria-labelledby': 'an-h' }, h('h2', { id: 'an-h' }, 'Trends'), msg('Loading…'));
  const runsSection = h('section', { class: 'card', 'aria-labelledby': 'lr-h' }, h('h2', { id: 'lr-h' }, 'Last runs'), msg('Loading…'));
  const auditSection = h('section', { class: 'card', 'aria-labelledby': 'au-h' }, h('h2', { id: 'au-h' }, 'Audit history'), msg('Loading…'));
  const flakyBadge = h('span', { class: 'head-badge' });
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/runs' }, '← All runs'), ' · ', h('a', { href: '#/flaky' }, 'Flaky tests')),
    h('div', { class: 'page-head' }, title, flakyBadge),
    h('div', { class: 'cols' }, h('div', null, flakySection, qSection, defSection), h('div', null, chartsSection, runsSection, auditSection)));

  const sectionBody = (sec, ...kids) => { sec.replaceChildren(sec.firstChild, ...kids.filter(Boolean)); };
  const fail = (sec, e, what) => { if (e.status !== 401 && !stopped) sectionBody(sec, problemBox(e, what)); };

  // ---- definition ----
  api.get(path).then((tc) => {
    if (stopped) return;
    title.textContent = 'Test case: ' + tc.name;
    setTitle(tc.name);
    const dl = h('dl', { class: 'facts' });
    const fact = (k, ...v) => dl.append(h('div', null, h('dt', null, k), h('dd', null, ...v)));
    fact('Id', h('code', null, tc.id));
    if (tc.description) fact('Description', tc.description);
    fact('Tags', tc.tags && tc.tags.length ? tc.tags.join(', ') : '—');
    fact('Timeout', tc.timeout_s ? tc.timeout_s + ' s' : 'default');
    fact('Version', String(tc.version));
    fact('Updated', timeEl(tc.updated_at));
    const vars = Object.entries(tc.variables || {});
    if (vars.length) fact('Variables', h('ul', { class: 'plain' }, vars.map(([k, v]) => h('li', null, h('code', null, k), ' = ', v))));
    const steps = h('ol', { class: 'step-defs' }, tc.steps.slice(0, 200).map((st) => h('li', null,
      h('span', null, st.name), ' ', h('span', { class: 'tag' }, st.action),
      st.http ? h('div', { class: 'small mono' }, st.http.method + ' ' + st.http.url) : null)));
    sectionBody(defSection, dl, h('h3', null, tc.steps.length + (tc.steps.length === 1 ? ' step' : ' steps')), steps,
      tc.steps.length > 200 ? h('p', { class: 'small muted' }, 'The first 200 steps are shown.') : null);
  }).catch((e) => {
    if (e.status === 404) { title.textContent = 'Test case ' + id; qSection.remove(); }
    fail(defSection, e, e.status === 404 ? 'This test case does not exist, or it is not yours' : 'Could not load the test case');
  });

  // ---- analytics: flakiness and charts ----
  const period = query.get('period') || '30';
  api.get('/analytics/test-cases/' + encodeURIComponent(id) + qs(period === '30' ? {} : { since: new Date(Date.now() - (Number(period) - 1) * DAY).toISOString().slice(0, 10), bucket: Number(period) > 90 ? 'week' : 'day' }))
    .then((a) => { if (!stopped) renderAnalytics(a); })
    .catch((e) => { fail(flakySection, e, 'Could not load the analytics'); fail(chartsSection, e, 'Could not load the analytics'); });

  function renderAnalytics(a) {
    const f = a.flaky;
    flakyBadge.replaceChildren(h('span', { class: 'badge ' + (f.is_flaky ? 'st-flaky' : 'st-stable'), 'data-testid': 'flaky-badge' }, f.is_flaky ? 'Flaky' : 'Not flaky'));
    sectionBody(flakySection,
      h('p', null, f.is_flaky ? 'This test case is flaky: its outcome changes between runs.' : 'This test case is not flaky.'),
      h('dl', { class: 'facts' },
        h('div', null, h('dt', null, 'Flip rate'), h('dd', null, fmtPercent(f.flip_rate))),
        h('div', null, h('dt', null, 'Passed on retry'), h('dd', null, String(f.retry_passes))),
        h('div', null, h('dt', null, 'Pass rate'), h('dd', null, fmtPercent(a.pass_rate, 1) + ' of ' + a.executions + ' executions'))),
      h('h3', null, 'Last outcomes'), outcomeStrip(f.last_outcomes),
      h('p', { class: 'small muted' }, 'P passed, F failed, errored or timed out; oldest first, over the last ' + f.window + '.'));

    const periodForm = h('form', { class: 'inline' },
      h('label', { for: 'period' }, 'Period'),
      h('select', { id: 'period', name: 'period' }, [['30', 'Last 30 days, by day'], ['90', 'Last 90 days, by day'], ['365', 'Last year, by week']]
        .map(([v, t]) => h('option', { value: v, selected: v === period ? true : undefined }, t))),
      h('button', { type: 'submit', class: 'btn secondary' }, 'Show'));
    periodForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = periodForm.elements.period.value;
      navigate('#/test-cases/' + encodeURIComponent(id) + (v === '30' ? '' : '?period=' + v));
    });
    const d = a.duration_ms || {};
    const stats = h('p', null, 'From ' + fmtDay(a.since) + ' to ' + fmtDay(a.until) + ' (UTC days): ' + a.executions + ' executions, ' +
      a.passed + ' passed, ' + a.failed + ' failed, ' + a.errored + ' errored, ' + a.timed_out + ' timed out, ' + a.skipped + ' skipped, ' + a.cancelled +
      ' cancelled. Duration p50 ' + fmtDuration(d.p50) + ', p95 ' + fmtDuration(d.p95) + ', max ' + fmtDuration(d.max) + '.');
    if (!a.trend.length) {
      sectionBody(chartsSection, periodForm, stats, msg('No finished executions in this period yet, so there is no trend to draw.', 'empty'));
      return;
    }
    const days = a.trend.map((p) => p.date);
    const rates = a.trend.map((p) => (p.pass_rate === null || p.pass_rate === undefined ? null : p.pass_rate));
    const withRate = rates.filter((r) => r !== null);
    const rateSummary = withRate.length
      ? 'Pass rate ' + fmtPercent(withRate[0]) + ' on the first day with outcomes, ' + fmtPercent(withRate[withRate.length - 1]) + ' on the last; lowest ' + fmtPercent(Math.min(...withRate)) + '.'
      : 'No outcomes to rate in this period.';
    const p50 = a.trend.map((p) => (p.duration_ms ? p.duration_ms.p50 : null));
    const p95 = a.trend.map((p) => (p.duration_ms ? p.duration_ms.p95 : null));
    const maxDur = Math.max(1, ...p95.filter((v) => v !== null), ...p50.filter((v) => v !== null));
    const durSummary = 'Duration p50 ' + fmtDuration(d.p50) + ' and p95 ' + fmtDuration(d.p95) + ' over the period; the slowest day had p95 ' + fmtDuration(maxDur) + '.';
    sectionBody(chartsSection, periodForm, stats,
      h('h3', null, 'Pass rate'),
      lineChart({ title: 'Pass rate by day', desc: 'Share of executions with an outcome that passed, per ' + a.bucket + ', from 0 to 100 %.', summary: rateSummary,
        xLabels: days, series: [{ name: 'Pass rate', cls: 's-rate', values: rates }], yMax: 1, yFmt: (v) => fmtPercent(v) }),
      h('h3', null, 'Duration'),
      lineChart({ title: 'Duration p50 and p95 by day', desc: 'Median (p50) and 95th percentile (p95) execution duration per ' + a.bucket + '.', summary: durSummary,
        xLabels: days, series: [{ name: 'p50', cls: 's-p50', values: p50 }, { name: 'p95', cls: 's-p95', values: p95 }], yMax: maxDur * 1.1, yFmt: (v) => fmtDuration(v) }));
  }

  // ---- last runs ----
  api.get('/executions' + qs({ test_case_id: id, limit: 20 })).then((page) => {
    if (stopped) return;
    if (!page.items.length) { sectionBody(runsSection, msg('This test case has not run yet.', 'empty')); return; }
    const rows = page.items.map((x) => h('tr', { dataset: { id: x.id, status: x.status } },
      h('td', null, h('a', { href: '#/runs/' + encodeURIComponent(x.id) }, timeEl(x.started_at || x.created_at, true))),
      h('td', null, badge(x.status)),
      h('td', { class: 'num' }, String(x.attempt)),
      h('td', null, progressEl(x.progress)),
      h('td', { class: 'num' }, fmtDuration(x.duration_ms))));
    sectionBody(runsSection,
      tableWrap(h('table', { class: 'grid', 'data-testid': 'case-runs' },
        h('caption', { class: 'sr-only' }, 'The last 20 runs of this test case, newest first'),
        h('thead', null, h('tr', null, ['Run', 'Status', 'Attempt', 'Progress', 'Duration'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows)), 'Last runs table'),
      h('p', null, h('a', { href: '#/runs?test_case_id=' + encodeURIComponent(id) }, 'All runs of this test case')));
  }).catch((e) => fail(runsSection, e, 'Could not load the runs'));

  // ---- quarantine and audit history ----
  async function loadQuarantine() {
    try {
      const all = await quarantines();
      if (!stopped) renderQuarantine(all.get(id) || null);
    } catch (e) { fail(qSection, e, 'Could not load the quarantine state'); }
  }

  function renderQuarantine(q, problem) {
    const err = problem ? problemBox(problem, 'Could not change the quarantine') : null;
    if (q) {
      const release = h('button', { type: 'button', class: 'btn' }, 'Release');
      release.addEventListener('click', async () => {
        release.disabled = true;
        try { await api.del(path + '/quarantine'); if (!stopped) { renderQuarantine(null); loadAudit(); } } catch (e) {
          if (e.status !== 401 && !stopped) renderQuarantine(q, e);
        }
      });
      sectionBody(qSection,
        h('p', { class: 'q-state', dataset: { quarantined: 'true' } }, h('span', { class: 'badge st-muted' }, 'Quarantined'),
          ' until ', timeEl(q.until), '.'),
        h('p', null, 'Reason: ', q.reason),
        h('p', { class: 'small muted' }, 'By ' + q.by + ' at ' + fmtTime(q.at) + '. While it lasts, this case’s failures are recorded but do not fail its suites (they count as muted).'),
        err, release);
      return;
    }
    const now = new Date();
    const reason = h('input', { id: 'q-reason', name: 'reason', required: true, maxlength: '1024', autocomplete: 'off' });
    const until = h('input', { id: 'q-until', name: 'until', type: 'datetime-local', required: true,
      value: localValue(new Date(now.getTime() + 7 * DAY)), min: localValue(now), max: localValue(new Date(now.getTime() + 30 * DAY - 60000)),
      'aria-describedby': 'q-until-help' });
    const form = h('form', { class: 'q-form' },
      h('p', { class: 'q-state', dataset: { quarantined: 'false' } }, 'Not quarantined: its failures fail its suites.'),
      h('div', { class: 'field' }, h('label', { for: 'q-reason' }, 'Reason'), reason),
      h('div', { class: 'field' }, h('label', { for: 'q-until' }, 'Until'), until,
        h('p', { id: 'q-until-help', class: 'small muted' }, 'Your local time (' + timeZone + '); at most 30 days ahead.')),
      err,
      h('button', { type: 'submit', class: 'btn' }, 'Quarantine'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const at = new Date(until.value);
      if (!reason.value.trim() || isNaN(at)) { (reason.value.trim() ? until : reason).focus(); return; }
      form.querySelector('button').disabled = true;
      try {
        const saved = await api.put(path + '/quarantine', { reason: reason.value.trim(), until: at.toISOString() });
        if (!stopped) { renderQuarantine(saved); loadAudit(); }
      } catch (e2) {
        if (e2.status !== 401 && !stopped) renderQuarantine(null, e2);
      }
    });
    sectionBody(qSection, form);
  }

  async function loadAudit() {
    try {
      const page = await api.get(path + '/history');
      if (stopped) return;
      if (!page.items.length) { sectionBody(auditSection, msg('Nothing recorded yet: quarantines and releases appear here.', 'empty')); return; }
      sectionBody(auditSection, h('ol', { class: 'timeline', 'data-testid': 'case-history' }, page.items.map((e) => h('li', null,
        timeEl(e.at), h('span', { class: 'transition' }, e.action === 'quarantined' ? 'Quarantined' : 'Released'),
        h('span', { class: 'small' }, 'by ' + e.actor + (e.until ? ', until ' + fmtTime(e.until) : '') + (e.reason ? ': ' + e.reason : ''))))));
    } catch (e) { fail(auditSection, e, 'Could not load the audit history'); }
  }

  loadQuarantine();
  loadAudit();
  return () => { stopped = true; };
}
