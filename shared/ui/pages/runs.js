// Runs: the caller's executions, newest first, with filters, paging and live refresh (a poll
// every 2 s of the first page, plus the unfinished rows further down, a few at a time).
// Rows go in a chunk per animation frame: the first chunk fills the screen at once, and no
// frame lays out more than CHUNK new rows, so a thousand runs never freeze the page.

import { api, fetchAll, qs } from '../api.js';
import {
  h, badge, progressEl, timeEl, fmtDuration, msg, problemBox, tableWrap, setTitle,
  TERMINAL, EXECUTION_STATUSES, label,
} from '../dom.js';

const POLL_MS = 2000;
const PAGE_MAX = 200; // the API's largest `limit`
const SIZES = [50, 100, 200, 500, 1000];
const ROW_FIELDS = 'id,status,progress,started_at,finished_at,duration_ms';
const CHUNK = 50;

function rowSig(x) {
  return x.status + '|' + (x.progress && x.progress.completed) + '|' + x.started_at + '|' + x.duration_ms;
}

function buildRow(x) {
  const kind = x.kind === 'suite' ? 'suite' : (x.parent_id ? 'case (in a suite)' : 'case');
  return h('tr', { dataset: { id: x.id, status: x.status } },
    h('td', null, h('a', { href: '#/runs/' + encodeURIComponent(x.id) }, x.name || x.id),
      h('div', { class: 'small muted mono' }, x.id)),
    h('td', null, badge(x.status)),
    h('td', null, kind, x.attempt > 1 ? h('div', { class: 'small muted' }, 'attempt ' + x.attempt) : null),
    h('td', null, progressEl(x.progress)),
    h('td', null, timeEl(x.started_at || x.created_at, true), x.started_at ? null : h('div', { class: 'small muted' }, 'created')),
    h('td', { class: 'num' }, x.duration_ms !== null && x.duration_ms !== undefined ? fmtDuration(x.duration_ms) : (TERMINAL.has(x.status) ? '—' : 'in progress')));
}

export function mount(main, { query, navigate }) {
  setTitle('Runs');
  const want = Math.max(1, Math.min(1000, parseInt(query.get('limit'), 10) || 50));
  const filters = {
    status: query.get('status') || '',
    kind: query.get('kind') || '',
    tag: query.get('tag') || '',
    test_suite_id: query.get('test_suite_id') || '',
    test_case_id: query.get('test_case_id') || '',
  };
  const state = {
    items: [], byId: new Map(), cursor: null, loading: false, stopped: false, timer: 0, rotate: 0,
    queue: [], frame: 0, // rows still to append, and the frame that appends the next chunk
  };

  // ---- filter form ----
  const select = (id, name, text, options, value) => h('div', { class: 'field' },
    h('label', { for: id }, text),
    h('select', { id, name }, options.map(([v, t]) => h('option', { value: v, selected: v === value ? true : undefined }, t))));
  const suiteSelect = select('f-suite', 'test_suite_id', 'Suite', [['', 'Any suite']].concat(filters.test_suite_id ? [[filters.test_suite_id, filters.test_suite_id]] : []), filters.test_suite_id);
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    select('f-status', 'status', 'Status', [['', 'Any status']].concat(EXECUTION_STATUSES.map((s) => [s, label(s)])), filters.status),
    select('f-kind', 'kind', 'Kind', [['', 'Any kind'], ['case', 'Case'], ['suite', 'Suite']], filters.kind),
    h('div', { class: 'field' }, h('label', { for: 'f-tag' }, 'Tag'), h('input', { id: 'f-tag', name: 'tag', value: filters.tag, autocomplete: 'off' })),
    suiteSelect,
    select('f-limit', 'limit', 'Rows per page', SIZES.map((n) => [String(n), String(n)]), String(SIZES.includes(want) ? want : 50)),
    h('div', { class: 'field actions' },
      h('button', { type: 'submit', class: 'btn' }, 'Apply filters'),
      h('button', { type: 'button', class: 'btn secondary', onclick: () => navigate('#/runs') }, 'Clear')));
  if (filters.test_case_id) form.append(h('input', { type: 'hidden', name: 'test_case_id', value: filters.test_case_id }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v && !(k === 'limit' && v === '50')) q.set(k, v);
    navigate('#/runs' + (q.toString() ? '?' + q : ''));
  });
  api.get('/test-suites?limit=200').then((page) => {
    const sel = suiteSelect.querySelector('select');
    for (const suite of page.items) {
      if (suite.id === filters.test_suite_id) { sel.querySelector('option[value="' + CSS.escape(suite.id) + '"]').textContent = suite.name; continue; }
      sel.append(h('option', { value: suite.id }, suite.name));
    }
  }).catch(() => { /* the filter still works with the id */ });

  // ---- table ----
  const tbody = h('tbody');
  const table = h('table', { class: 'grid runs', 'data-testid': 'runs-list', dataset: { count: '0' } },
    h('caption', { class: 'sr-only' }, 'Runs, newest first'),
    h('colgroup', null, ['c-run', 'c-status', 'c-kind', 'c-prog', 'c-started', 'c-dur'].map((c) => h('col', { class: c }))),
    h('thead', null, h('tr', null, ['Run', 'Status', 'Kind', 'Progress', 'Started', 'Duration'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  const status = h('div', { class: 'list-status' });
  const more = h('button', { type: 'button', class: 'btn secondary', hidden: true }, 'Load more');
  const live = h('p', { class: 'small muted live' });
  const filtered = Object.values(filters).some(Boolean);

  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Runs'), live),
    form, status, tableWrap(table, 'Runs'), h('div', { class: 'more' }, more));

  function setCount() {
    table.dataset.count = String(tbody.rows.length);
  }

  // Appends `items` at the end of the table: the first chunk now, the rest one chunk per frame.
  // Marks: runs-render-start, runs-first-rows (first chunk in the DOM), runs-rendered (all).
  function appendRows(items) {
    if (!state.queue.length) {
      performance.clearMarks('runs-render-start');
      performance.mark('runs-render-start');
    }
    state.queue.push(...items);
    if (!state.frame) appendChunk(true);
  }

  function appendChunk(first) {
    state.frame = 0;
    if (state.stopped) return;
    const frag = document.createDocumentFragment();
    for (const x of state.queue.splice(0, CHUNK)) frag.append(buildRow(x));
    tbody.append(frag);
    if (first) performance.mark('runs-first-rows');
    if (state.queue.length) {
      state.frame = requestAnimationFrame(() => appendChunk(false));
      return;
    }
    setCount();
    performance.mark('runs-rendered');
    const m = performance.measure('runs-render', 'runs-render-start', 'runs-rendered');
    table.dataset.renderMs = m.duration.toFixed(1);
  }

  function remember(items) {
    for (const x of items) state.byId.set(x.id, { item: x, sig: rowSig(x) });
  }

  function showEmptyOrMore() {
    more.hidden = !state.cursor;
    if (!state.items.length) {
      status.replaceChildren(msg(filtered ? 'No runs match these filters.' : 'No runs yet. Start an execution through the API, or import a test report.', 'empty'));
    } else {
      status.replaceChildren();
    }
  }

  async function fetchRows(count, cursor) {
    const page = await fetchAll('/executions', filters, count, PAGE_MAX, { cursor });
    return { items: page.items, cursor: page.next_cursor };
  }

  async function firstLoad() {
    status.replaceChildren(msg('Loading runs…'));
    try {
      const { items, cursor } = await fetchRows(want);
      if (state.stopped) return;
      state.items = items.filter((x) => !state.byId.has(x.id));
      state.cursor = cursor;
      remember(state.items);
      appendRows(state.items); // with none, this still counts (and marks) the empty table
      showEmptyOrMore();
      schedule();
    } catch (e) {
      if (state.stopped || e.status === 401) return;
      status.replaceChildren(problemBox(e, 'Could not load the runs'));
      schedule();
    }
  }

  more.addEventListener('click', async () => {
    if (state.loading || !state.cursor) return;
    state.loading = true;
    more.disabled = true;
    more.textContent = 'Loading…';
    try {
      const { items, cursor } = await fetchRows(want, state.cursor);
      if (state.stopped) return;
      const fresh = items.filter((x) => !state.byId.has(x.id));
      state.items.push(...fresh);
      remember(fresh);
      state.cursor = cursor;
      appendRows(fresh);
      showEmptyOrMore();
    } catch (e) {
      if (e.status !== 401) status.replaceChildren(problemBox(e, 'Could not load more runs'));
    } finally {
      state.loading = false;
      more.disabled = false;
      more.textContent = 'Load more';
    }
  });

  function update(x) {
    const known = state.byId.get(x.id);
    if (!known) return;
    Object.assign(known.item, x);
    const sig = rowSig(known.item);
    if (sig === known.sig) return;
    known.sig = sig;
    const tr = tbody.querySelector('tr[data-id="' + CSS.escape(x.id) + '"]');
    if (tr) tr.replaceWith(buildRow(known.item));
  }

  async function poll() {
    if (state.stopped) return;
    if (document.hidden || state.loading) { schedule(); return; }
    try {
      const page = await api.get('/executions' + qs({ ...filters, limit: Math.min(want, 50) }));
      if (state.stopped) return;
      const fresh = [];
      const seen = new Set();
      for (const x of page.items) {
        seen.add(x.id);
        if (state.byId.has(x.id)) update(x);
        else fresh.push(x);
      }
      if (fresh.length) {
        const frag = document.createDocumentFragment();
        for (const x of fresh) frag.append(buildRow(x));
        tbody.prepend(frag);
        state.items.unshift(...fresh);
        remember(fresh);
        if (!state.queue.length) setCount(); // otherwise the last chunk counts them
        showEmptyOrMore();
      }
      // Unfinished rows below the first page: refresh a few per tick, in turn.
      const pending = state.items.filter((x) => !seen.has(x.id) && !TERMINAL.has(x.status));
      if (pending.length) {
        const batch = [];
        for (let i = 0; i < Math.min(8, pending.length); i++) batch.push(pending[(state.rotate + i) % pending.length]);
        state.rotate = (state.rotate + batch.length) % Math.max(1, pending.length);
        const answers = await Promise.all(batch.map((x) => api.get('/executions/' + encodeURIComponent(x.id) + '?fields=' + ROW_FIELDS).catch(() => null)));
        if (state.stopped) return;
        for (const a of answers) if (a) update(a);
      }
      live.textContent = 'Live: updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      if (e.status === 401) return;
      live.textContent = 'Live updates paused (' + (e.problem && e.problem.title || e.message) + '); retrying.';
    }
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.stopped) state.timer = setTimeout(poll, POLL_MS);
  }

  firstLoad();
  return () => { state.stopped = true; clearTimeout(state.timer); cancelAnimationFrame(state.frame); };
}
