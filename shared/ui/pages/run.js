// Run: one execution's header, steps (case) or children (suite), audit history, actions and
// exports, kept live by the execution's event stream.

import { api, fetchAll } from '../api.js';
import { openStream } from '../sse.js';
import {
  h, badge, progressEl, timeEl, fmtDuration, msg, problemBox, tableWrap, setTitle, download,
  TERMINAL, FAILING, rank, label,
} from '../dom.js';

const STEP_PAGE = 500;
const STEPS_FIRST = 1000;
const CHILD_FIELDS = 'id,name,status,progress,attempt,test_case_id,started_at,finished_at,duration_ms';

export function mount(main, { params, navigate, flash }) {
  const id = params[0];
  const path = '/executions/' + encodeURIComponent(id);
  const st = {
    trace: null, stopped: false, stream: null, timers: [],
    steps: new Map(), stepsCursor: null,
    children: new Map(), childCursor: null, childFetch: new Set(),
    historyKeys: new Set(), ticks: 0, childBusy: false,
  };
  setTitle('Run ' + id);

  const title = h('h1', null, 'Run');
  const live = h('p', { class: 'small muted live', role: 'status' });
  const statusEl = h('span', { 'data-testid': 'run-status' });
  const progressWrap = h('div', { 'data-testid': 'run-progress', class: 'run-progress' });
  const facts = h('dl', { class: 'facts' });
  const actionsErr = h('div');
  const cancelBtn = h('button', { type: 'button', class: 'btn danger', disabled: true }, 'Cancel run');
  const retryBtn = h('button', { type: 'button', class: 'btn', disabled: true }, 'Retry run');
  const junitBtn = h('button', { type: 'button', class: 'btn secondary' }, 'Download JUnit XML');
  const ctrfBtn = h('button', { type: 'button', class: 'btn secondary' }, 'Download CTRF JSON');
  const body = h('div', { class: 'run-body' });
  const historyList = h('ol', { class: 'timeline', 'data-testid': 'history' });
  const historySection = h('section', { 'aria-labelledby': 'history-h', class: 'card' },
    h('h2', { id: 'history-h' }, 'History'), historyList);

  const top = h('div', null, msg('Loading the run…'));
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/runs' }, '← All runs')), top);

  // ---------------- header ----------------

  function fact(name, ...value) {
    facts.append(h('div', null, h('dt', null, name), h('dd', null, ...value)));
  }
  const link = (to, text) => h('a', { href: to }, text);

  function renderHeader() {
    const t = st.trace;
    title.textContent = (t.kind === 'suite' ? 'Suite run: ' : 'Run: ') + (t.name || t.id);
    setTitle(t.name || t.id);
    statusEl.dataset.status = t.status;
    statusEl.replaceChildren(badge(t.status));
    renderProgress();
    facts.replaceChildren();
    fact('Status', statusEl);
    fact('Progress', progressWrap);
    fact('Duration', h('span', { class: 'duration' }, durationText()));
    fact('Started', timeEl(t.started_at));
    fact('Finished', timeEl(t.finished_at));
    fact('Created', timeEl(t.created_at));
    fact('Kind', t.kind + (t.runner ? ' (' + t.runner + ' runner)' : ''));
    fact('Id', h('code', null, t.id));
    if (t.test_case_id) fact('Test case', link('#/test-cases/' + encodeURIComponent(t.test_case_id), t.kind === 'case' ? (t.name || t.test_case_id) : t.test_case_id));
    if (t.test_suite_id) fact('Suite', h('code', null, t.test_suite_id));
    if (t.parent_id) fact('Part of', link('#/runs/' + encodeURIComponent(t.parent_id), 'the suite run'));
    fact('Attempt', String(t.attempt),
      t.retry_of ? [' (retry of ', link('#/runs/' + encodeURIComponent(t.retry_of), 'the previous attempt'), ')'] : null,
      t.retried_by ? [' · ', link('#/runs/' + encodeURIComponent(t.retried_by), 'next attempt')] : null);
    fact('Priority', t.priority);
    if (t.environment) fact('Environment', t.environment);
    if (t.tags && t.tags.length) fact('Tags', t.tags.join(', '));
    updateActions();
  }

  function durationText() {
    const t = st.trace;
    if (t.duration_ms !== null && t.duration_ms !== undefined) return fmtDuration(t.duration_ms);
    if (t.started_at && !TERMINAL.has(t.status)) return fmtDuration(Date.now() - Date.parse(t.started_at)) + ' so far';
    return TERMINAL.has(t.status) ? '—' : 'not started';
  }

  function renderProgress() {
    const p = st.trace.progress;
    Object.assign(progressWrap.dataset, { percent: String(p.percent), completed: String(p.completed), total: String(p.total) });
    progressWrap.replaceChildren(progressEl(p, true));
  }

  function updateActions() {
    const done = TERMINAL.has(st.trace.status);
    cancelBtn.disabled = done;
    retryBtn.disabled = !done;
    cancelBtn.title = done ? 'Only an unfinished run can be cancelled' : '';
    retryBtn.title = done ? '' : 'Only a finished run can be retried';
  }

  async function act(btn, fn) {
    actionsErr.replaceChildren();
    btn.disabled = true;
    try { await fn(); } catch (e) {
      if (e.status !== 401) actionsErr.replaceChildren(problemBox(e, btn.textContent + ' failed'));
    } finally {
      btn.disabled = false;
      if (st.trace) updateActions();
    }
  }
  cancelBtn.addEventListener('click', () => act(cancelBtn, async () => {
    const t = await api.post(path + '/cancel', {});
    if (rank(t.status) >= rank(st.trace.status)) { Object.assign(st.trace, t); renderHeader(); }
  }));
  retryBtn.addEventListener('click', () => act(retryBtn, async () => {
    const t = await api.post(path + '/retry', {});
    flash('Started attempt ' + t.attempt + ' of ' + (t.name || 'the run') + '.');
    navigate('#/runs/' + encodeURIComponent(t.id));
  }));
  const exporter = (btn, format, ext) => btn.addEventListener('click', () => act(btn, async () => {
    const res = await api.get(path + '/report?format=' + format, { raw: true, headers: { Accept: format === 'junit' ? 'application/xml' : 'application/json' } });
    await download(res, id + ext);
  }));
  exporter(junitBtn, 'junit', '.junit.xml');
  exporter(ctrfBtn, 'ctrf', '.ctrf.json');

  // ---------------- steps ----------------

  const stepsBody = h('tbody');
  const moreSteps = h('button', { type: 'button', class: 'btn secondary', hidden: true }, 'Load more steps');
  const stepsStatus = h('div');

  function stepRow(x) {
    const tr = h('tr', { 'data-testid': 'step-row', dataset: { index: String(x.index), status: x.status } });
    fillStep(tr, x);
    return tr;
  }
  function fillStep(tr, x) {
    tr.dataset.status = x.status;
    const details = [];
    if (x.message) details.push(h('div', { class: 'message' }, x.message));
    if (x.output) details.push(h('details', null, h('summary', null, 'Output'), h('pre', null, x.output)));
    if (x.truncated) details.push(h('div', { class: 'small muted' }, 'Truncated to the stored size.'));
    tr.replaceChildren(
      h('td', { class: 'num' }, String(x.index + 1)),
      h('td', null, x.name),
      h('td', null, badge(x.status)),
      h('td', { class: 'num' }, fmtDuration(x.duration_ms)),
      h('td', null, timeEl(x.started_at, true)),
      h('td', { class: 'wrap' }, details.length ? details : h('span', { class: 'muted' }, '—')));
  }
  function addSteps(items) {
    const frag = document.createDocumentFragment();
    for (const x of items) {
      const known = st.steps.get(x.index);
      if (known) { Object.assign(known.step, x); fillStep(known.tr, known.step); continue; }
      const tr = stepRow(x);
      st.steps.set(x.index, { step: x, tr });
      frag.append(tr);
    }
    stepsBody.append(frag);
  }
  async function loadSteps(upTo) {
    const t = st.trace;
    if (t.steps && t.storage !== 'partitioned') { addSteps(t.steps); return; }
    const { next_cursor: cursor } = await fetchAll(path + '/steps', {}, upTo, STEP_PAGE,
      { cursor: st.stepsCursor, onPage: addSteps, stopped: () => st.stopped });
    st.stepsCursor = cursor;
    moreSteps.hidden = !cursor;
  }
  moreSteps.addEventListener('click', async () => {
    moreSteps.disabled = true;
    try { await loadSteps(STEPS_FIRST); } catch (e) { if (e.status !== 401) stepsStatus.replaceChildren(problemBox(e, 'Could not load more steps')); }
    moreSteps.disabled = false;
  });
  function stepsSection() {
    return h('section', { 'aria-labelledby': 'steps-h', class: 'card' },
      h('h2', { id: 'steps-h' }, 'Steps'),
      stepsStatus,
      tableWrap(h('table', { class: 'grid steps', 'data-testid': 'steps-table' },
        h('caption', { class: 'sr-only' }, 'Steps in order'),
        h('thead', null, h('tr', null, ['#', 'Step', 'Status', 'Duration', 'Started', 'Message'].map((c) => h('th', { scope: 'col' }, c)))),
        stepsBody), 'Steps table'),
      h('div', { class: 'more' }, moreSteps));
  }

  // ---------------- children (suites) ----------------

  const childBody = h('tbody');
  const childCounts = h('p', { class: 'counts' });
  const moreChildren = h('button', { type: 'button', class: 'btn secondary', hidden: true }, 'Load more children');
  const childStatus = h('div');

  // The children listing and the child events say so: the suite's plan recorded it when the
  // child ended (a single child's trace does not know).
  function isMuted(x) {
    return x.muted === true && FAILING.has(x.status);
  }
  function fillChild(tr, x) {
    const muted = isMuted(x);
    tr.dataset.status = x.status;
    tr.dataset.muted = String(muted);
    tr.replaceChildren(
      h('td', null, h('a', { href: '#/runs/' + encodeURIComponent(x.id) }, x.name || x.id), h('div', { class: 'small muted mono' }, x.id)),
      h('td', null, badge(x.status), muted ? [' ', h('span', { class: 'badge st-muted', title: 'Quarantined: does not fail the suite' }, 'muted')] : null),
      h('td', { class: 'num' }, String(x.attempt || 1)),
      h('td', null, x.progress ? progressEl(x.progress) : '—'),
      h('td', { class: 'num' }, fmtDuration(x.duration_ms)),
      h('td', null, x.test_case_id ? h('a', { href: '#/test-cases/' + encodeURIComponent(x.test_case_id), class: 'mono' }, x.test_case_id) : '—'));
  }
  function addChildren(items) {
    const frag = document.createDocumentFragment();
    for (const x of items) {
      const known = st.children.get(x.id);
      if (known) { Object.assign(known.item, x); fillChild(known.tr, known.item); continue; }
      const tr = h('tr', { dataset: { id: x.id } });
      fillChild(tr, x);
      st.children.set(x.id, { item: x, tr });
      frag.append(tr);
    }
    childBody.append(frag);
  }
  function updateChild(x) {
    const known = st.children.get(x.id);
    if (!known) return;
    if (rank(x.status) < rank(known.item.status)) x = { ...x, status: known.item.status };
    Object.assign(known.item, x);
    fillChild(known.tr, known.item);
  }
  function renderCounts() {
    const c = st.trace.children;
    if (!c) { childCounts.textContent = ''; return; }
    const parts = ['pending', 'queued', 'running', 'passed', 'failed', 'error', 'timed_out', 'cancelled', 'skipped']
      .filter((k) => c[k]).map((k) => c[k] + ' ' + label(k));
    childCounts.textContent = c.total + ' children' + (parts.length ? ': ' + parts.join(', ') : '') +
      (c.muted ? '. ' + c.muted + ' muted (quarantined: their failures do not fail the suite).' : '.');
  }
  async function loadChildren(all) {
    const { next_cursor: cursor } = await fetchAll(path + '/children', {}, 1000, 200,
      { cursor: all ? null : st.childCursor, onPage: addChildren, stopped: () => st.stopped });
    st.childCursor = cursor;
    moreChildren.hidden = !cursor;
  }
  moreChildren.addEventListener('click', async () => {
    moreChildren.disabled = true;
    try { await loadChildren(false); } catch (e) { if (e.status !== 401) childStatus.replaceChildren(problemBox(e, 'Could not load more children')); }
    moreChildren.disabled = false;
  });
  function childrenSection() {
    return h('section', { 'aria-labelledby': 'children-h', class: 'card' },
      h('h2', { id: 'children-h' }, 'Children'),
      childCounts, childStatus,
      tableWrap(h('table', { class: 'grid', 'data-testid': 'children-list' },
        h('caption', { class: 'sr-only' }, 'Child executions of this suite run, every attempt'),
        h('thead', null, h('tr', null, ['Test', 'Status', 'Attempt', 'Progress', 'Duration', 'Test case'].map((c) => h('th', { scope: 'col' }, c)))),
        childBody), 'Children table'),
      h('div', { class: 'more' }, moreChildren));
  }
  /** Fetches children the stream named that are new (a retry) or whose progress moves. */
  async function fetchChildren(ids) {
    const answers = await Promise.all(ids.map((cid) => api.get('/executions/' + encodeURIComponent(cid) + '?fields=' + CHILD_FIELDS).catch(() => null)));
    if (st.stopped) return;
    const fresh = [];
    for (const a of answers) {
      if (!a) continue;
      if (st.children.has(a.id)) updateChild(a); else fresh.push(a);
    }
    if (fresh.length) addChildren(fresh);
  }

  // ---------------- history ----------------

  function addHistory(e) {
    const key = (e.from || '') + '>' + e.to;
    if (st.historyKeys.has(key)) return;
    st.historyKeys.add(key);
    historyList.append(h('li', { dataset: { to: e.to } },
      timeEl(e.at),
      h('span', { class: 'transition' }, e.from ? [badge(e.from), ' → '] : 'created → ', badge(e.to)),
      h('span', { class: 'small' }, 'by ' + e.actor + (e.reason ? ': ' + e.reason : ''))));
  }
  async function loadHistory() {
    const page = await api.get(path + '/history');
    for (const e of page.items) addHistory(e);
  }

  // ---------------- live events ----------------

  function onEvent(type, entry) {
    if (st.stopped || !entry || !entry.data) return;
    const d = entry.data;
    const t = st.trace;
    if (type === 'status') {
      if (rank(d.to) >= rank(t.status) && d.to !== t.status) {
        t.status = d.to;
        if (d.to === 'running' && !t.started_at) t.started_at = entry.at;
        if (TERMINAL.has(d.to) && !t.finished_at) t.finished_at = entry.at;
        renderHeader();
      }
      addHistory({ ...d, at: entry.at });
    } else if (type === 'step') {
      const known = st.steps.get(d.index);
      if (known && rank(d.status) >= rank(known.step.status)) {
        Object.assign(known.step, { status: d.status, name: d.name || known.step.name });
        if (d.duration_ms !== undefined) known.step.duration_ms = d.duration_ms;
        if (d.message !== undefined) known.step.message = d.message;
        if (!known.step.started_at) known.step.started_at = entry.at;
        fillStep(known.tr, known.step);
      }
      if (d.progress) { t.progress = d.progress; renderProgress(); }
      if (t.status === 'queued') { t.status = 'running'; renderHeader(); }
    } else if (type === 'child') {
      if (d.children) {
        t.children = d.children;
        const c = d.children;
        const completed = c.total - (c.pending || 0) - (c.queued || 0) - (c.running || 0);
        t.progress = { ...t.progress, total: c.total, completed, passed: c.passed, percent: c.total ? Math.round(1000 * completed / c.total) / 10 : 0 };
        renderProgress();
        renderCounts();
      }
      const known = st.children.get(d.execution_id);
      if (known) {
        if (rank(d.status) >= rank(known.item.status)) { known.item.status = d.status; known.item.muted = d.muted === true; fillChild(known.tr, known.item); }
        if (known.item.status !== 'queued') st.childFetch.add(d.execution_id);
      } else {
        st.childFetch.add(d.execution_id);
      }
    }
  }

  async function refreshAll() {
    const t = await api.get(path);
    if (st.stopped) return;
    st.trace = t;
    renderHeader();
    if (t.kind === 'suite') {
      await loadChildren(true);
      renderCounts();
    } else if (t.steps && t.storage !== 'partitioned') {
      addSteps(t.steps);
    } else {
      st.stepsCursor = null;
      await loadSteps(Math.max(STEPS_FIRST, st.steps.size));
    }
    await loadHistory();
  }

  function startStream() {
    st.stream = openStream(path + '/events', {
      onEvent,
      onState(state) {
        live.textContent = {
          connecting: 'Live: connecting…', open: 'Live: updates appear as they happen.',
          retrying: 'Live: connection lost, reconnecting…', ended: 'Finished: no more updates.', closed: '',
        }[state] || '';
      },
      onEnd() { refreshAll().catch(() => {}); },
    });
  }

  function tick() {
    if (st.stopped) return;
    const t = st.trace;
    if (t && t.started_at && !TERMINAL.has(t.status)) {
      const d = facts.querySelector('.duration');
      if (d) d.textContent = durationText();
    }
    if (t && t.kind === 'suite' && !st.childBusy && (st.childFetch.size || ++st.ticks % 2 === 0)) {
      // Child progress is not in the suite's log: refresh the unfinished ones, a few at a time.
      const ids = [...st.childFetch];
      st.childFetch.clear();
      for (const { item } of st.children.values()) {
        if (ids.length >= 12) break;
        if (!TERMINAL.has(item.status) && item.status !== 'queued' && !ids.includes(item.id)) ids.push(item.id);
      }
      if (ids.length) {
        st.childBusy = true;
        fetchChildren(ids).finally(() => { st.childBusy = false; });
      }
    }
  }

  async function start() {
    try {
      st.trace = await api.get(path);
    } catch (e) {
      if (e.status === 401 || st.stopped) return;
      setTitle('Run not found');
      top.replaceChildren(h('h1', null, 'Run ' + id), problemBox(e, e.status === 404 ? 'This run does not exist, or it is not yours' : 'Could not load the run'));
      return;
    }
    if (st.stopped) return;
    const t = st.trace;
    body.replaceChildren(t.kind === 'suite' ? childrenSection() : stepsSection(), historySection);
    top.replaceChildren(
      h('div', { class: 'page-head' }, title, live),
      h('section', { class: 'card summary', 'aria-label': 'Run summary' },
        facts,
        h('div', { class: 'actions' }, cancelBtn, retryBtn, junitBtn, ctrfBtn),
        actionsErr),
      body);
    renderHeader();
    try {
      if (t.kind === 'suite') {
        renderCounts();
        await loadChildren(true);
      } else {
        await loadSteps(STEPS_FIRST);
        if (!st.steps.size) stepsStatus.replaceChildren(msg('This run has no steps.', 'empty'));
      }
      await loadHistory();
    } catch (e) {
      if (e.status === 401 || st.stopped) return;
      body.prepend(problemBox(e, 'Could not load all of the run'));
    }
    if (st.stopped) return;
    if (TERMINAL.has(st.trace.status)) {
      live.textContent = 'Finished: no more updates.'; // nothing leaves a terminal status
    } else {
      startStream();
      st.timers.push(setInterval(tick, 1000));
    }
  }

  start();
  return () => {
    st.stopped = true;
    if (st.stream) st.stream.close();
    st.timers.forEach(clearInterval);
  };
}
