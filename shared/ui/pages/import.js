// Import: send a JUnit XML or CTRF JSON report to POST /imports and land on the run.

import { api, qs } from '../api.js';
import { h, problemBox, setTitle } from '../dom.js';

const MAX = 10 * 1024 * 1024;

function kib(n) { return n < 1024 ? n + ' bytes' : (n / 1024).toFixed(1) + ' KiB'; }

/** 'junit' | 'ctrf' | null, from the name, else the first character of the file. */
async function sniff(file) {
  const name = file.name.toLowerCase();
  if (name.endsWith('.xml')) return 'junit';
  if (name.endsWith('.json')) return 'ctrf';
  const head = (await file.slice(0, 512).text()).replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('<')) return 'junit';
  if (head.startsWith('{')) return 'ctrf';
  return null;
}

export function mount(main, { navigate, flash }) {
  setTitle('Import');
  let file = null;
  const input = h('input', { id: 'report', name: 'report', type: 'file', accept: '.xml,.json,application/xml,text/xml,application/json', 'aria-describedby': 'report-help' });
  const chosen = h('p', { class: 'chosen', 'aria-live': 'polite' }, 'No file chosen.');
  const zone = h('label', { for: 'report', class: 'dropzone' },
    h('span', { class: 'dz-big' }, 'Drop a report file here'),
    h('span', null, 'or choose one: a JUnit XML or CTRF JSON file'),
    input);
  const format = h('select', { id: 'format', name: 'format' },
    h('option', { value: '' }, 'Tell by the file'), h('option', { value: 'junit' }, 'JUnit XML'), h('option', { value: 'ctrf' }, 'CTRF JSON'));
  const text = (id, labelText, help) => h('div', { class: 'field' }, h('label', { for: id }, labelText),
    h('input', { id, name: id, autocomplete: 'off', 'aria-describedby': help ? id + '-help' : undefined }),
    help ? h('p', { id: id + '-help', class: 'small muted' }, help) : null);
  const status = h('div');
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Import');
  const form = h('form', { class: 'card import', 'data-testid': 'import-form', 'aria-labelledby': 'import-h' },
    zone, chosen,
    h('p', { id: 'report-help', class: 'small muted' }, 'Reports from Surefire, pytest, jest-junit, gotestsum, the JUnit 5 console launcher, node:test and mocha, or CTRF; up to 10 MiB.'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'format' }, 'Format'), format),
      text('suite', 'Suite name', 'Optional: by default the report’s own name.'),
      text('environment', 'Environment', 'Optional, e.g. staging.'),
      text('tags', 'Tags', 'Optional, comma-separated.')),
    status, submit);

  main.append(h('div', { class: 'page-head' }, h('h1', { id: 'import-h' }, 'Import a test report')),
    h('p', { class: 'muted' }, 'Record a run that another tool ran: each test becomes a case execution under one suite run.'),
    form);

  function choose(f) {
    file = f || null;
    status.replaceChildren();
    chosen.textContent = file ? 'Chosen: ' + file.name + ' (' + kib(file.size) + ').' : 'No file chosen.';
  }
  input.addEventListener('change', () => choose(input.files[0]));
  for (const ev of ['dragenter', 'dragover']) zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('over'); });
  for (const ev of ['dragleave', 'drop']) zone.addEventListener(ev, () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) choose(f);
  });

  const clientProblem = (title, detail) => problemBox({ problem: { title, detail } });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!file) { status.replaceChildren(clientProblem('Choose a report file first', 'Pick a JUnit XML or CTRF JSON file, or drop one on the box.')); input.focus(); return; }
    if (file.size > MAX) { status.replaceChildren(clientProblem('The file is too large', file.name + ' is ' + kib(file.size) + '; the limit is 10 MiB.')); return; }
    const fmt = format.value || await sniff(file);
    if (!fmt) { status.replaceChildren(clientProblem('Unknown report format', 'Name the file .xml (JUnit) or .json (CTRF), or choose the format.')); format.focus(); return; }
    const v = (id) => form.elements[id].value.trim();
    submit.disabled = true;
    status.replaceChildren(h('p', { class: 'msg', role: 'status' }, 'Importing ' + file.name + '…'));
    try {
      const res = await api.post('/imports' + qs({ suite: v('suite'), environment: v('environment'), tags: v('tags'), format: format.value }), file,
        { contentType: fmt === 'junit' ? 'application/xml' : 'application/json' });
      const s = res.import || {};
      const w = s.warnings && s.warnings.length ? ' Warnings: ' + s.warnings.join('; ') : '';
      flash('Imported ' + s.tests + ' tests from ' + file.name + ': ' + s.passed + ' passed, ' + s.failed + ' failed, ' + s.errored + ' errored, ' + s.skipped + ' skipped, ' + s.flaky + ' flaky.' + w);
      navigate('#/runs/' + encodeURIComponent(res.id));
    } catch (err) {
      if (err.status !== 401 && form.isConnected) {
        status.replaceChildren(problemBox(err, 'The report was not imported'));
        submit.disabled = false;
      }
    }
  });
}
