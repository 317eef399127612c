#!/usr/bin/env python3
"""Browser test of the runledger dashboard (shared/ui/), with Playwright and headless Chromium.

    RUNLEDGER_UI_TOKEN=<jwt> python3 functions/local/tests/ui/dashboard_test.py http://127.0.0.1:8687

The base URL (argv[1] or RUNLEDGER_UI_URL) is a server that serves the dashboard at `/` and
the API at `/api/v1`: runledger-local itself, or devserver.py in front of it. Optional:
RUNLEDGER_CHROMIUM (default /usr/bin/chromium), RUNLEDGER_UI_SHOTS (screenshot folder, default
target/ui-screenshots), RUNLEDGER_UI_BULK (executions for the render check, default 1000).

Prints every check and every measured number (the numbers also go to measurements.txt in the
screenshot folder); exits 1 when any check failed.
"""

import concurrent.futures as cf
import contextlib
import gzip
import json
import os
import re
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get('RUNLEDGER_UI_URL', '')).rstrip('/')
TOKEN = os.environ.get('RUNLEDGER_UI_TOKEN', '').strip()
CHROMIUM = os.environ.get('RUNLEDGER_CHROMIUM', '/usr/bin/chromium')
SHOTS = os.environ.get('RUNLEDGER_UI_SHOTS', 'target/ui-screenshots')
BULK = int(os.environ.get('RUNLEDGER_UI_BULK', '1000'))
# Set by run_dev.py when devserver.py (which does not compress) serves the UI.
DEV_SERVER = os.environ.get('RUNLEDGER_UI_DEV_SERVER') == '1'
AXE = os.path.join(HERE, 'vendor', 'axe.min.js')
TAG = 'ui%d' % int(time.time())

LIVE_LIMIT_MS = 1000
RENDER_LIMIT_MS = 300
# A main-thread task longer than this while rows render is a visible freeze (RAIL's 100 ms
# response budget, with room for a loaded 2-core CI machine).
JANK_LIMIT_MS = 150
FIRST_LOAD_LIMIT = 200 * 1024
SIZES = [(1280, 800), (390, 844)]

results = []   # (name, ok, detail)
numbers = []   # (name, value)


def check(name, ok, detail=''):
    results.append((name, bool(ok), detail))
    print(('  PASS ' if ok else '  FAIL ') + name + (': ' + str(detail) if detail else ''), flush=True)
    return ok


def measured(name, value, unit=''):
    numbers.append((name, value, unit))
    print('  MEASURED %s = %s%s' % (name, value, (' ' + unit) if unit else ''), flush=True)


@contextlib.contextmanager
def section(name):
    print('\n== ' + name, flush=True)
    try:
        yield
    except Exception as e:  # a failed step is a failed check; the next steps still run
        check(name + ' (ran to the end)', False, '%s: %s' % (type(e).__name__, str(e).splitlines()[0] if str(e) else ''))
        traceback.print_exc(limit=4)


# ---------------- the API, through urllib ----------------

class ApiFailure(Exception):
    pass


def call(method, path, body=None, raw=None, ctype='application/json'):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + '/api/v1' + path, data=data, method=method)
    req.add_header('Authorization', 'Bearer ' + TOKEN)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            text = res.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise ApiFailure('%s %s -> %d %s' % (method, path, e.code, e.read()[:300].decode('utf-8', 'replace')))


def external_case(name, steps=2):
    return call('POST', '/test-cases', {'name': name, 'tags': [TAG], 'steps': [{'name': '%s step %d' % (name, i), 'action': 'external'} for i in range(steps)]})


def suite_of(name, case_ids):
    return call('POST', '/test-suites', {'name': name, 'test_case_ids': case_ids, 'tags': [TAG]})


def start_case(case_id):
    return call('POST', '/executions/case', {'test_case_id': case_id})


def start_suite(suite_id):
    return call('POST', '/executions/suite', {'test_suite_id': suite_id})


def report(ex_id, index, status, message=None):
    step = {'index': index, 'status': status, 'duration_ms': 120 + index}
    if message:
        step['message'] = message
    return call('POST', '/executions/%s/steps' % ex_id, {'steps': [step]})


def complete(ex_id):
    return call('POST', '/executions/%s/complete' % ex_id, {})


def children_of(ex_id):
    return call('GET', '/executions/%s/children?limit=200' % ex_id)['items']


def wait_api(ex_id, pred, timeout=15):
    end = time.time() + timeout
    while True:
        t = call('GET', '/executions/%s' % ex_id)
        if pred(t) or time.time() > end:
            return t
        time.sleep(0.1)


# ---------------- the browser ----------------

class Browser:
    def __init__(self, pw):
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        self.console_errors = []
        self.allowed = []   # regexes of console errors expected in the current step
        self.axe_source = open(AXE, encoding='utf-8').read()
        self.axe_violations = []
        self.axe_pages = []
        os.makedirs(SHOTS, exist_ok=True)

    def context(self, **kw):
        ctx = self.browser.new_context(viewport={'width': 1280, 'height': 800}, **kw)
        ctx.set_default_timeout(15000)
        return ctx

    def watch(self, page):
        def on_console(msg):
            if msg.type != 'error':
                return
            text = msg.text
            if any(re.search(a, text) for a in self.allowed):
                print('  (expected console message: %s)' % text[:160])
                return
            self.console_errors.append((page.url.split('#token=')[0], text))
            print('  console error on %s: %s' % (page.url.split('#token=')[0], text[:300]))

        def on_pageerror(err):
            self.console_errors.append((page.url, 'pageerror: %s' % err))
            print('  page error on %s: %s' % (page.url, err))

        page.on('console', on_console)
        page.on('pageerror', on_pageerror)
        return page

    @contextlib.contextmanager
    def expect_http_error(self, status):
        pattern = r'Failed to load resource: the server responded with a status of %d' % status
        self.allowed.append(pattern)
        try:
            yield
        finally:
            self.allowed.remove(pattern)

    def settle(self, page):
        """Two animation frames: the page has laid out and painted what it has."""
        page.evaluate('() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))')

    def axe(self, page, name):
        if not page.evaluate('() => !!window.axe'):
            # add_script_tag(path=...) adds an inline <script>, which the dashboard's CSP
            # (script-src 'self') rightly refuses; evaluate the same file instead.
            page.evaluate(self.axe_source)
        found = page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' :: ' + (n.failureSummary || '').replace(/\\s+/g, ' '))})))""")
        bad = [v for v in found if v['impact'] in ('serious', 'critical')]
        minor = [v for v in found if v['impact'] not in ('serious', 'critical')]
        self.axe_pages.append(name)
        for v in bad:
            self.axe_violations.append((name, v))
            print('  axe %s on %s: %s (%s)' % (v['impact'], name, v['id'], v['help']))
            for n in v['nodes']:
                print('      ' + n[:300])
        for v in minor:
            print('  axe (%s, not failing) on %s: %s' % (v['impact'], name, v['id']))
        check('axe: no serious/critical violations on %s' % name, not bad, '%d found' % len(bad) if bad else '')

    def shoot_and_scan(self, page, name):
        for w, h in SIZES:
            page.set_viewport_size({'width': w, 'height': h})
            self.settle(page)
            path = os.path.join(SHOTS, '%s-%dx%d.png' % (name, w, h))
            page.screenshot(path=path, full_page=True)
            print('  screenshot ' + path)
            self.axe(page, '%s @%dpx' % (name, w))
            if w > 600:
                page.emulate_media(color_scheme='dark')
                self.settle(page)
                path = os.path.join(SHOTS, '%s-dark-%dx%d.png' % (name, w, h))
                page.screenshot(path=path, full_page=True)
                print('  screenshot ' + path)
                self.axe(page, '%s @%dpx, dark' % (name, w))
                page.emulate_media(color_scheme='light')
            if w < 600:
                wide = page.evaluate('() => document.documentElement.scrollWidth')
                check('%s has no page-wide horizontal scroll at %dpx' % (name, w), wide <= w + 1, 'scrollWidth %d' % wide)
        page.set_viewport_size({'width': 1280, 'height': 800})


def goto(page, hash_):
    page.evaluate('(h) => { location.hash = h; }', hash_)


def status_of(page):
    return page.get_attribute('[data-testid=run-status]', 'data-status')


def wait_status(page, status, timeout=15000):
    page.wait_for_selector('[data-testid=run-status][data-status="%s"]' % status, timeout=timeout)


WATCH_JS = """([key, selector, status]) => {
  window.__seen = window.__seen || {};
  delete window.__seen[key];
  const test = () => {
    const el = document.querySelector(selector);
    if (el && el.dataset.status === status && !window.__seen[key]) window.__seen[key] = Date.now();
  };
  const mo = new MutationObserver(test);
  mo.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
  test();
}"""


SSE_PROBE_JS = """async () => {
  const src = document.querySelector('script[type=module]').src.replace(/app\\.js$/, 'sse.js');
  const m = await import(src);
  const enc = new TextEncoder();
  const streamOf = (chunks) => new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(enc.encode(x)); c.close(); } });
  const parsed = [];
  const ended = await m.readEvents(streamOf([
    'id: 1\\r\\nevent: st', 'ep\\r\\ndata: {"seq":1}\\r', '\\n\\r\\n: keep-alive\\n\\n',
    'id: 2\\nevent: status\\ndata: {"seq":2,\\ndata: "x":1}\\n\\nevent: end\\ndata: {}\\n\\n', 'id: 3\\nevent: step\\ndata: {}\\n\\n',
  ]), (t, d, id) => parsed.push([t, d, id]), () => parsed.push(['comment']));
  const realFetch = window.fetch;
  const calls = [];
  window.fetch = async (url, opts) => {
    if (!String(url).includes('/__sse_probe')) return realFetch(url, opts);
    calls.push(opts.headers['Last-Event-ID'] || null);
    const body = calls.length === 1
      ? streamOf(['id: 5\\nevent: step\\ndata: {"seq":5}\\n\\n'])  // then the server drops the stream
      : streamOf(['id: 6\\nevent: status\\ndata: {"seq":6}\\n\\nevent: end\\ndata: {}\\n\\n']);
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
  try {
    const events = [];
    await new Promise((resolve, reject) => {
      m.openStream('/__sse_probe', { onEvent: (t, d, id) => events.push([t, id]), onEnd: resolve });
      setTimeout(() => reject(new Error('the stream did not end')), 8000);
    });
    await new Promise((r) => setTimeout(r, 1200));  // nothing reconnects after the end
    return { parsed, ended, calls: calls.slice(0, 2), events, after_end_calls: calls.length };
  } finally { window.fetch = realFetch; }
}"""


def live_latency(page, key, selector, status, action):
    """Runs action() (an API call), then waits for the page to show `status` on `selector`
    without a reload; returns milliseconds from the action's response to the DOM change."""
    page.evaluate(WATCH_JS, [key, selector, status])
    action()
    answered = time.time() * 1000
    page.wait_for_function('(k) => window.__seen && window.__seen[k]', arg=key, timeout=10000)
    seen = page.evaluate('(k) => window.__seen[k]', key)
    return max(0.0, seen - answered)


def wait_live(page):
    page.wait_for_function("() => { const l = document.querySelector('.live'); return l && /updates appear|Finished/.test(l.textContent); }")


# ---------------- the scenario ----------------

def main():
    if not BASE or not TOKEN:
        print('usage: RUNLEDGER_UI_TOKEN=<jwt> %s <base url>   (or RUNLEDGER_UI_URL)' % sys.argv[0])
        return 2
    print('dashboard test against %s (screenshots in %s)' % (BASE, SHOTS))
    call('GET', '/executions?limit=1')  # the token works

    with sync_playwright() as pw:
        b = Browser(pw)
        ctx = b.context()
        page = b.watch(ctx.new_page())
        sizes = {'total': 0, 'assets': 0, 'api': 0}
        assets = []

        def on_finished(req):
            try:
                s = req.sizes()
            except Exception:
                return
            n = s['responseBodySize'] + s['responseHeadersSize']
            sizes['total'] += n
            sizes['api' if '/api/' in req.url else 'assets'] += n
            if '/api/' not in req.url:
                assets.append(req)

        # 1. sign in through the #token= link; the Runs page renders; first-load size
        with section('1. sign-in link and the Runs page'):
            page.on('requestfinished', on_finished)
            page.goto(BASE + '/#token=' + TOKEN)
            page.wait_for_selector('[data-testid=runs-list]')
            page.wait_for_function("() => !document.querySelector('main .msg[role=status]') || document.querySelector('[data-testid=runs-list]').dataset.count !== '0' || /No runs/.test(document.body.textContent)")
            page.wait_for_load_state('networkidle')
            page.remove_listener('requestfinished', on_finished)
            check('the token left the address bar', page.evaluate('location.hash') == '#/runs', page.evaluate('location.hash'))
            check('the token is in sessionStorage', page.evaluate("sessionStorage.getItem('runledger.token')") == TOKEN)
            check('nav, sign-out and the runs list are shown', page.is_visible('nav[aria-label=Main]') and page.is_visible('button:has-text("Sign out")'))
            count = int(page.get_attribute('[data-testid=runs-list]', 'data-count'))
            check('the runs list has data-count', count >= 0, count)

        # 9a. bytes of the first load
        with section('9a. first-load size of the Runs page'):
            encoded = page.evaluate("""() => performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
                .reduce((a, e) => ({transfer: a.transfer + e.transferSize, encoded: a.encoded + e.encodedBodySize, decoded: a.decoded + e.decodedBodySize}), {transfer: 0, encoded: 0, decoded: 0})""")
            compressed, sizable = [], []
            raw_total = gz_total = 0
            for req in assets:
                res = req.response()
                if not res:
                    continue
                enc = (res.headers.get('content-encoding') or '').lower()
                try:
                    body = res.body()
                except Exception:
                    continue
                if len(body) >= 256:
                    sizable.append(req.url)
                    if enc == 'gzip':
                        compressed.append(req.url)
                raw_total += len(body)
                gz_total += len(gzip.compress(body, 9))
                print('  asset %-48s %6d bytes%s' % (req.url.replace(BASE, ''), len(body), (' (' + enc + ' on the wire)') if enc else ''))
            measured('first load, bytes received (Playwright sizes: headers + bodies as sent)', sizes['total'], 'bytes')
            measured('  of which UI files', sizes['assets'], 'bytes')
            measured('  of which API answers', sizes['api'], 'bytes')
            measured('first load, Resource Timing transferSize', encoded['transfer'], 'bytes')
            measured('first load, Resource Timing encodedBodySize', encoded['encoded'], 'bytes')
            measured('first load, Resource Timing decodedBodySize', encoded['decoded'], 'bytes')
            measured('UI files uncompressed', raw_total, 'bytes')
            measured('UI files if gzipped (-9, computed here)', gz_total, 'bytes')
            check('first load transferred under 200 KB', sizes['total'] < FIRST_LOAD_LIMIT, '%d bytes' % sizes['total'])
            if DEV_SERVER:
                print('  NOTE: the dev server sends the UI files uncompressed: the compression check is '
                      'runledger-local\'s own (RUNLEDGER_UI_DEV_SERVER=1 is set), and the 200 KB check '
                      'above ran on the uncompressed bytes.')
            else:
                check('every UI file of 256 bytes or more is sent gzipped',
                      sorted(compressed) == sorted(sizable) and len(sizable) >= 5,
                      '%d of %d: %s' % (len(compressed), len(sizable), sorted(set(sizable) - set(compressed))))

        # sse.js on its own: chunking, CRLF, comments, resume with Last-Event-ID, stop at end
        with section('SSE client (sse.js): parsing, resume after a drop, end'):
            got = page.evaluate(SSE_PROBE_JS)
            check('parses events split across chunks, CRLF and multi-line data; skips comments',
                  got['parsed'] == [['step', '{"seq":1}', '1'], ['comment'], ['status', '{"seq":2,\n"x":1}', '2']] and got['ended'],
                  got['parsed'])
            check('after a drop it reconnects with Last-Event-ID of the last event', got['calls'] == [None, '5'], got['calls'])
            check('delivers every event once and stops at event: end', got['events'] == [['step', '5'], ['status', '6']] and got['after_end_calls'] == 2,
                  '%s, %d connections' % (got['events'], got['after_end_calls']))

        # 2. a suite of two external cases: live updates without reload
        with section('2. live updates on the Run page'):
            a = external_case('ui live A ' + TAG)
            bcase = external_case('ui live B ' + TAG)
            suite = suite_of('ui live suite ' + TAG, [a['id'], bcase['id']])
            sx = start_suite(suite['id'])
            kids = {c['test_case_id']: c['id'] for c in children_of(sx['id'])}
            goto(page, '#/runs/' + sx['id'])
            page.wait_for_selector('[data-testid=children-list] tbody tr >> nth=1')
            wait_live(page)
            check('the suite page lists its 2 children', page.locator('[data-testid=children-list] tbody tr').count() == 2)
            row_a = '[data-testid=children-list] tr[data-id="%s"]' % kids[a['id']]
            ms = live_latency(page, 'childA', row_a, 'running', lambda: report(kids[a['id']], 0, 'passed'))
            measured('suite page: child status shown after the step report answered', round(ms, 1), 'ms')
            check('child status updated live within 1 s (no reload)', ms < LIVE_LIMIT_MS, '%.1f ms' % ms)

            page.click(row_a + ' a >> nth=0')
            page.wait_for_selector('[data-testid=steps-table] [data-testid=step-row][data-index="1"]')
            wait_live(page)
            check('child page: step 0 shows passed', page.get_attribute('[data-testid=step-row][data-index="0"]', 'data-status') == 'passed')
            ms = live_latency(page, 'stepA1', '[data-testid=step-row][data-index="1"]', 'failed',
                              lambda: report(kids[a['id']], 1, 'failed', 'expected 200, got 503'))
            measured('run page: step status shown after the step report answered', round(ms, 1), 'ms')
            check('step row updated live within 1 s (no reload)', ms < LIVE_LIMIT_MS, '%.1f ms' % ms)
            page.wait_for_selector('[data-testid=run-progress][data-completed="2"]', timeout=3000)
            check('progress updated live (2 of 2)', True)
            check('the step message is shown', 'expected 200, got 503' in page.inner_text('[data-testid=step-row][data-index="1"]'))
            complete(kids[a['id']])
            wait_status(page, 'failed', 5000)
            check('run status updated live to failed', True)
            check('history timeline has the transitions', page.locator('[data-testid=history] li').count() >= 3,
                  page.locator('[data-testid=history] li').count())
            b.shoot_and_scan(page, 'run-case')

            goto(page, '#/runs/' + sx['id'])
            page.wait_for_selector('[data-testid=children-list] tr[data-id="%s"][data-status="failed"]' % kids[a['id']])
            wait_live(page)
            report(kids[bcase['id']], 0, 'passed')
            report(kids[bcase['id']], 1, 'passed')
            complete(kids[bcase['id']])
            wait_status(page, 'failed', 5000)
            page.wait_for_selector('[data-testid=children-list] tr[data-id="%s"][data-status="passed"]' % kids[bcase['id']], timeout=5000)
            check('suite ended failed live, children passed and failed', True)
            for label, head in (('JUnit XML', '<'), ('CTRF JSON', '{')):
                with page.expect_download() as dl:
                    page.click('button:has-text("Download %s")' % label)
                with open(dl.value.path(), encoding='utf-8') as f:
                    body = f.read()
                check('export: Download %s saves the report (%s)' % (label, dl.value.suggested_filename),
                      body.lstrip().startswith(head) and ('ui live A' in body), '%d bytes' % len(body))
                check('export: the %s button is usable again afterwards' % label, page.is_enabled('button:has-text("Download %s")' % label))
            b.shoot_and_scan(page, 'run-suite')

        # 3. cancel from the UI; retry
        with section('3. Cancel run and Retry run'):
            ex = start_case(a['id'])
            goto(page, '#/runs/' + ex['id'])
            wait_status(page, 'queued')
            check('Retry run is disabled while the run is not finished', page.is_disabled('button:has-text("Retry run")'))
            page.click('button:has-text("Cancel run")')
            wait_status(page, 'cancelled', 5000)
            check('status cancelled after Cancel run', status_of(page) == 'cancelled')
            check('Cancel run is disabled once cancelled', page.is_disabled('button:has-text("Cancel run")'))
            page.click('button:has-text("Retry run")')
            page.wait_for_function('(id) => /^#\\/runs\\/ex_/.test(location.hash) && !location.hash.endsWith(id)', arg=ex['id'])
            wait_status(page, 'queued')
            new_id = page.evaluate('location.hash').split('/')[-1]
            t = call('GET', '/executions/' + new_id)
            check('Retry run started attempt 2 and opened it', t['attempt'] == 2 and t['retry_of'] == ex['id'], new_id)
            call('POST', '/executions/%s/cancel' % new_id, {'reason': 'ui test cleanup'})
            wait_status(page, 'cancelled', 5000)

        # 4. import a JUnit XML file
        with section('4. Import'):
            tmp = tempfile.mkdtemp(prefix='rl-ui-')
            good = os.path.join(tmp, 'junit.xml')
            with open(good, 'w') as f:
                f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="ui-import" tests="3" failures="1">'
                        '<testcase classname="ui.Checkout" name="pays" time="0.120"/>'
                        '<testcase classname="ui.Checkout" name="refunds" time="0.310"><failure message="expected 200, got 503">trace</failure></testcase>'
                        '<testcase classname="ui.Checkout" name="ships" time="0.050"/></testsuite>\n')
            bad = os.path.join(tmp, 'broken.xml')
            with open(bad, 'w') as f:
                f.write('<testsuite><testcase name="x"></testsuite>')
            goto(page, '#/import')
            page.wait_for_selector('[data-testid=import-form]')
            b.shoot_and_scan(page, 'import')
            page.set_input_files('input[type=file]', bad)
            with b.expect_http_error(400):
                page.click('button:has-text("Import")')
                page.wait_for_selector('[data-testid=import-form] [data-testid=error]')
            text = page.inner_text('[data-testid=error]')
            check('a broken report shows the problem', '400' in text, text.replace('\n', ' | ')[:200])
            page.set_input_files('input[type=file]', good)
            page.fill('#suite', 'ui import ' + TAG)
            page.click('button:has-text("Import")')
            page.wait_for_function("() => /^#\\/runs\\/ex_/.test(location.hash)")
            page.wait_for_selector('[data-testid=run-status]')
            page.wait_for_selector('[data-testid=children-list] tbody tr >> nth=2')
            check('landed on the imported run with its 3 tests', page.locator('[data-testid=children-list] tbody tr').count() == 3)
            check('the import summary is shown', 'Imported 3 tests' in page.inner_text('#flash'), page.inner_text('#flash')[:120])
            check('the imported run failed (one test failed)', status_of(page) == 'failed', status_of(page))

        # 5. flaky, quarantine from the case page, a suite passes with the child muted
        with section('5. Flaky, quarantine and muted'):
            fl = external_case('ui flaky ' + TAG, steps=1)
            other = external_case('ui steady ' + TAG, steps=1)
            for i in range(6):
                e = start_case(fl['id'])
                report(e['id'], 0, 'passed' if i % 2 == 0 else 'failed')
                complete(e['id'])
            an = call('GET', '/analytics/test-cases/' + fl['id'])
            check('the API calls it flaky', an['flaky']['is_flaky'], an['flaky'])
            goto(page, '#/test-cases/' + fl['id'])
            page.wait_for_selector('[data-testid=flaky-badge]')
            check('flaky badge shown', page.inner_text('[data-testid=flaky-badge]') == 'Flaky')
            page.wait_for_selector('.chart')
            check('charts drawn as SVG with titles', page.locator('svg.chart title').count() >= 2)
            check('last-outcomes strip', page.get_attribute('.outcomes', 'aria-label').startswith('Last 6 outcomes'))
            page.wait_for_selector('[data-testid=quarantine-form] button:has-text("Quarantine")')
            until = page.evaluate("""() => { const d = new Date(Date.now() + 5 * 86400000); const p = (n) => String(n).padStart(2, '0');
                return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; }""")
            page.get_by_label('Reason').fill('flaky on CI, ui test')
            page.get_by_label('Until').fill(until)
            page.click('[data-testid=quarantine-form] button:has-text("Quarantine")')
            page.wait_for_selector('[data-testid=quarantine-form] button:has-text("Release")')
            check('quarantined from the case page', page.get_attribute('[data-testid=quarantine-form] .q-state', 'data-quarantined') == 'true')
            page.wait_for_selector('[data-testid=case-history] li')
            check('audit history shows the quarantine', 'Quarantined' in page.inner_text('[data-testid=case-history]'))
            qs_ = call('GET', '/quarantine')['items']
            check('the API has the quarantine, with the reason', any(q['test_case_id'] == fl['id'] and q['reason'] == 'flaky on CI, ui test' for q in qs_))
            b.shoot_and_scan(page, 'test-case')

            goto(page, '#/flaky')
            page.wait_for_selector('[data-testid=flaky-list] tr[data-id="%s"]' % fl['id'])
            row = '[data-testid=flaky-list] tr[data-id="%s"]' % fl['id']
            check('flaky list shows the case as quarantined', page.get_attribute(row, 'data-quarantined') == 'true' and 'Quarantined' in page.inner_text(row))
            page.wait_for_function('([sel, name]) => document.querySelector(sel + " a").textContent === name', arg=[row, fl['name']])
            check('flaky list names the case and links it', page.get_attribute(row + ' a', 'href') == '#/test-cases/' + fl['id'])
            b.shoot_and_scan(page, 'flaky')

            qsuite = suite_of('ui quarantine suite ' + TAG, [fl['id'], other['id']])
            qx = start_suite(qsuite['id'])
            kids = {c['test_case_id']: c['id'] for c in children_of(qx['id'])}
            report(kids[fl['id']], 0, 'failed', 'flaked again')
            complete(kids[fl['id']])
            report(kids[other['id']], 0, 'passed')
            complete(kids[other['id']])
            t = wait_api(qx['id'], lambda t: t['status'] in ('passed', 'failed'))
            check('API: the suite passed with 1 muted child', t['status'] == 'passed' and t['children']['muted'] == 1, '%s %s' % (t['status'], t['children']))
            goto(page, '#/runs/' + qx['id'])
            wait_status(page, 'passed')
            muted_row = '[data-testid=children-list] tr[data-id="%s"]' % kids[fl['id']]
            page.wait_for_selector(muted_row)
            check('suite page: passed, the failing child is shown muted',
                  page.get_attribute(muted_row, 'data-muted') == 'true' and 'muted' in page.inner_text(muted_row),
                  page.inner_text(muted_row).replace('\n', ' | '))
            check('suite page: the muted count is told', '1 muted' in page.inner_text('.counts'))
            b.shoot_and_scan(page, 'run-suite-muted')

            goto(page, '#/test-cases/' + fl['id'])
            page.click('[data-testid=quarantine-form] button:has-text("Release")')
            page.wait_for_selector('[data-testid=quarantine-form] button:has-text("Quarantine")')
            check('Release lifts the quarantine', not any(q['test_case_id'] == fl['id'] for q in call('GET', '/quarantine')['items']))

        with section('Runs page: filters, live rows, screenshots'):
            goto(page, '#/runs?tag=' + TAG)
            page.wait_for_function("() => document.querySelector('[data-testid=runs-list]')?.dataset.count !== '0' || /No runs/.test(document.querySelector('main').textContent)")
            goto(page, '#/runs?kind=suite')
            page.wait_for_function("() => +document.querySelector('[data-testid=runs-list]')?.dataset.count > 0")
            kinds = page.evaluate("() => [...document.querySelectorAll('[data-testid=runs-list] tbody tr')].map((r) => r.cells[2].textContent)")
            check('kind filter: only suites listed', kinds and all(k == 'suite' for k in kinds), '%d rows' % len(kinds))
            goto(page, '#/runs')
            page.wait_for_function("() => +document.querySelector('[data-testid=runs-list]')?.dataset.count > 0")
            new = start_case(other['id'])
            page.wait_for_selector('[data-testid=runs-list] tr[data-id="%s"]' % new['id'], timeout=6000)
            check('a new run appears on the Runs page without reload', True)
            sel = '[data-testid=runs-list] tr[data-id="%s"]' % new['id']
            t0 = time.time()
            report(new['id'], 0, 'passed')
            complete(new['id'])
            page.wait_for_selector(sel + '[data-status="passed"]', timeout=6000)
            measured('runs page: finished status shown after complete (poll every 2 s)', round((time.time() - t0) * 1000), 'ms')
            check('a row updates its status without reload', True)
            b.shoot_and_scan(page, 'runs')
            page.reload()  # a fresh focus starting point (the token stays in sessionStorage)
            page.wait_for_function("() => +document.querySelector('[data-testid=runs-list]')?.dataset.count > 0")
            page.keyboard.press('Tab')
            first = page.evaluate('() => [document.activeElement.id, getComputedStyle(document.activeElement).outlineStyle]')
            check('keyboard: Tab reaches the skip link first, with a visible outline', first[0] == 'skip' and first[1] != 'none', first)
            page.keyboard.press('Enter')
            check('keyboard: the skip link moves focus to the page heading', page.evaluate('() => document.activeElement.tagName') == 'H1')
            page.keyboard.press('Tab')
            tag = page.evaluate('() => document.activeElement.id || document.activeElement.tagName')
            check('keyboard: the next Tab goes into the page (the filter form)', tag == 'f-status', tag)

        # sign-out, sign-in form, a refused token, a 401 mid-session
        with section('Sign-in, sign-out and 401'):
            page.click('button:has-text("Sign out")')
            page.wait_for_selector('form.signin')
            check('signed out: the sign-in form says so', 'signed out' in page.inner_text('main'))
            check('signed out: the token is gone', page.evaluate("sessionStorage.getItem('runledger.token')") is None)
            b.shoot_and_scan(page, 'sign-in')
            with b.expect_http_error(401):
                page.get_by_label('Bearer token').fill('not-a-token')
                page.click('button:has-text("Sign in")')
                page.wait_for_selector('form.signin [data-testid=error]:has-text("401")')
            check('a refused token shows a clear 401 message', True)
            page.get_by_label('Bearer token').fill(TOKEN)
            page.click('button:has-text("Sign in")')
            page.wait_for_selector('[data-testid=runs-list]')
            check('signed in through the form', True)
            page.evaluate("sessionStorage.setItem('runledger.token', 'expired.or.bad')")
            with b.expect_http_error(401):
                goto(page, '#/flaky')
                page.wait_for_selector('form.signin [data-testid=error]:has-text("401")')
            check('a 401 mid-session signs out and says why', page.evaluate("sessionStorage.getItem('runledger.token')") is None)
            page.get_by_label('Bearer token').fill(TOKEN)
            page.click('button:has-text("Sign in")')
            page.wait_for_selector('[data-testid=flaky-list]')
            check('signing in again returns to the page', page.evaluate('location.hash') == '#/flaky')

        # 9b. 1,000 executions rendered
        with section('9b. rendering %d runs' % BULK):
            bulk = external_case('ui bulk ' + TAG, steps=1)
            t0 = time.time()
            with cf.ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(lambda _: start_case(bulk['id'])['id'], range(BULK)))
            measured('started %d executions through the API' % len(ids), round(time.time() - t0, 2), 's')
            goto(page, '#/import')
            page.wait_for_selector('[data-testid=import-form]')
            # Frame timing: the first chunk of rows to its frame (what the user sees), every row
            # to its frame, and the long tasks (main thread busy over 50 ms) in between.
            page.evaluate("""() => { performance.clearMeasures('runs-render'); window.__first = null; window.__paint = null; window.__long = [];
                const afterFrame = (mark, set) => { const start = performance.getEntriesByName('runs-render-start').at(-1).startTime;
                  requestAnimationFrame(() => setTimeout(() => set(performance.now() - start), 0)); };
                new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); }).observe({type: 'longtask'});
                new PerformanceObserver((list, obs) => { for (const e of list.getEntries()) {
                  if (e.name === 'runs-first-rows' && window.__first === null) afterFrame(e, (v) => { window.__first = v; });
                  if (e.name === 'runs-rendered') { afterFrame(e, (v) => { window.__paint = v; }); obs.disconnect(); } } }).observe({type: 'mark'}); }""")
            t0 = time.time()
            goto(page, '#/runs?limit=%d' % BULK)
            page.wait_for_function("(n) => document.querySelector('[data-testid=runs-list]')?.dataset.count === String(n)", arg=BULK, timeout=60000)
            measured('runs page: from navigation to %d rows shown (5 API pages included)' % BULK, round((time.time() - t0) * 1000), 'ms')
            page.wait_for_function('() => window.__paint !== null && window.__first !== null')
            first = page.evaluate('() => window.__first')
            paint = page.evaluate('() => window.__paint')
            longest = page.evaluate('() => Math.max(0, ...window.__long)')
            print('  long tasks (ms): %s' % page.evaluate('() => window.__long.map(Math.round).join(", ")'))
            measured('runs page: first rows on screen (render start -> first chunk painted)', round(first, 1), 'ms')
            measured('runs page: all %d rows painted (render start -> last chunk painted)' % BULK, round(paint, 1), 'ms')
            measured('runs page: longest main-thread task while rendering %d rows' % BULK, round(longest, 1), 'ms')
            check('rows are on screen under %d ms' % RENDER_LIMIT_MS, first < RENDER_LIMIT_MS, '%.1f ms' % first)
            check('no main-thread task over %d ms while %d rows render' % (JANK_LIMIT_MS, BULK), longest < JANK_LIMIT_MS, '%.1f ms' % longest)
            check('rows carry their data', page.locator('[data-testid=runs-list] tbody tr').count() == BULK)
            if page.is_visible('button:has-text("Load more")'):
                before = BULK
                page.evaluate("() => performance.clearMeasures('runs-render')")
                page.click('button:has-text("Load more")')
                page.wait_for_function("(n) => +document.querySelector('[data-testid=runs-list]').dataset.count > n", arg=before, timeout=60000)
                after = int(page.get_attribute('[data-testid=runs-list]', 'data-count'))
                append = page.evaluate("() => performance.getEntriesByName('runs-render', 'measure').at(-1).duration")
                measured('runs page: Load more appended %d rows' % (after - before), round(append, 1), 'ms')
                check('Load more appends the next page', after > before, after)
            with cf.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: call('POST', '/executions/%s/cancel' % i, {'reason': 'ui test cleanup'}), ids))

        with section('6. console and page errors'):
            for url, text in b.console_errors:
                print('  %s: %s' % (url, text[:300]))
            check('no console errors or page errors on any page', not b.console_errors, '%d found' % len(b.console_errors))

        with section('7. axe-core summary'):
            print('  scanned: ' + ', '.join(b.axe_pages))
            check('no serious or critical axe violations anywhere', not b.axe_violations, '%d found' % len(b.axe_violations))

        ctx.close()
        b.browser.close()

    print('\n== measured')
    for name, value, unit in numbers:
        print('  %s: %s %s' % (name, value, unit))
    # Kept beside the screenshots, so a CI run's figures outlive its (quiet on success) output.
    with open(os.path.join(SHOTS, 'measurements.txt'), 'w') as out:
        out.write('cores: %s\n' % os.cpu_count())
        for name, value, unit in numbers:
            out.write('%s: %s %s\n' % (name, value, unit))
    failed = [r for r in results if not r[1]]
    print('\n%d passed, %d failed' % (len(results) - len(failed), len(failed)))
    for name, _, detail in failed:
        print('  FAILED: %s %s' % (name, detail))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
