// Flaky tests: the caller's flaky test cases, highest flip rate first.

import { api, qs } from '../api.js';
import { outcomeStrip } from '../charts.js';
import { h, timeEl, fmtPercent, fmtDay, msg, problemBox, tableWrap, setTitle } from '../dom.js';

export function mount(main) {
  setTitle('Flaky tests');
  let stopped = false;
  let cursor = null;
  let rankNo = 0;
  const names = new Map();
  const tbody = h('tbody');
  const table = h('table', { class: 'grid', 'data-testid': 'flaky-list', dataset: { count: '0' } },
    h('caption', { class: 'sr-only' }, 'Flaky test cases, highest flip rate first'),
    h('thead', null, h('tr', null, ['Rank', 'Test case', 'Flip rate', 'Passed on retry', 'Last outcomes', 'Last finished', 'Quarantine'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const status = h('div', null, msg('Loading flaky tests…'));
  const more = h('button', { type: 'button', class: 'btn secondary', hidden: true }, 'Load more');
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Flaky tests')),
    h('p', { class: 'muted' }, 'A test case is flaky when its last outcomes flip between pass and fail (a flip rate of 20 % or more over at least 5 outcomes), or when it passed on a retry after failing.'),
    status, tableWrap(table, 'Flaky tests'), h('div', { class: 'more' }, more));

  function row(item) {
    const f = item.flaky;
    const q = item.quarantine;
    const name = h('a', { href: '#/test-cases/' + encodeURIComponent(item.test_case_id) }, names.get(item.test_case_id) || item.test_case_id);
    return h('tr', { dataset: { id: item.test_case_id, quarantined: String(!!q) } },
      h('td', { class: 'num' }, String(++rankNo)),
      h('td', null, name, h('div', { class: 'small muted mono' }, item.test_case_id)),
      h('td', { class: 'num' }, fmtPercent(f.flip_rate)),
      h('td', { class: 'num' }, String(f.retry_passes)),
      h('td', null, outcomeStrip(f.last_outcomes)),
      h('td', null, fmtDay(item.last_day)),
      h('td', null, q ? [h('span', { class: 'badge st-muted' }, 'Quarantined'), h('div', { class: 'small' }, 'until ', timeEl(q.until, true))] : 'Not quarantined'));
  }

  async function load() {
    try {
      const page = await api.get('/analytics/flaky' + qs({ limit: 50, cursor }));
      if (stopped) return;
      cursor = page.next_cursor;
      const frag = document.createDocumentFragment();
      for (const item of page.items) frag.append(row(item));
      tbody.append(frag);
      table.dataset.count = String(tbody.rows.length);
      more.hidden = !cursor;
      status.replaceChildren(tbody.rows.length ? '' : msg('No flaky test cases. Tests whose outcomes flip between runs will be listed here.', 'empty'));
      // The listing names test cases by id: fetch their names.
      await Promise.all(page.items.map(async (item) => {
        if (names.has(item.test_case_id)) return;
        try {
          const tc = await api.get('/test-cases/' + encodeURIComponent(item.test_case_id));
          names.set(tc.id, tc.name);
          const a = tbody.querySelector('tr[data-id="' + CSS.escape(tc.id) + '"] a');
          if (a && !stopped) a.textContent = tc.name;
        } catch { /* deleted: keep the id */ }
      }));
    } catch (e) {
      if (e.status !== 401 && !stopped) status.replaceChildren(problemBox(e, 'Could not load the flaky tests'));
    }
  }
  more.addEventListener('click', async () => { more.disabled = true; await load(); more.disabled = false; });
  load();
  return () => { stopped = true; };
}
