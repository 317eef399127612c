#!/usr/bin/env python3
"""Runs the dashboard test by hand, in one command (stdlib only to start):

    .venv/bin/python functions/local/tests/ui/run_dev.py [--dev-server]

It starts runledger-local on a free port with a fresh data dir, makes a token, runs
dashboard_test.py against the dashboard the server serves at `/` (or, with --dev-server, against
devserver.py in front of it, which serves shared/ui from disk: edit, reload, no rebuild), and
stops what it started. The binary is $RUNLEDGER_LOCAL_BIN, else
${CARGO_TARGET_DIR:-target}/debug/runledger-local; it builds nothing. The Python that runs this
needs Playwright (`scripts/emulator install` puts it in .venv; Chromium is Debian's, see
scripts/browser). The test suite runs the same test through functions/local/tests/dashboard.rs.
Exits with the test's exit code.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit('not answering: ' + url)


def main():
    dev_server = '--dev-server' in sys.argv[1:]
    target = os.environ.get('CARGO_TARGET_DIR') or os.path.join(HERE, '..', '..', '..', '..', 'target')
    binary = os.environ.get('RUNLEDGER_LOCAL_BIN', os.path.join(target, 'debug', 'runledger-local'))
    if not os.path.exists(binary):
        raise SystemExit('no runledger-local at %s (build it, or set RUNLEDGER_LOCAL_BIN)' % binary)
    data = tempfile.mkdtemp(prefix='rl-ui-data-')
    api_port = free_port()
    procs = []
    try:
        env = dict(os.environ, RUNLEDGER_DATA_DIR=data)
        log = open(os.path.join(data, 'server.log'), 'w')
        procs.append(subprocess.Popen([binary, 'serve', '--listen', '127.0.0.1:%d' % api_port], env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_http('http://127.0.0.1:%d/api/v1/health' % api_port)
        token = subprocess.check_output([binary, 'token', '--sub', 'ui-test', '--ttl', '7200', '--data-dir', data], text=True).strip()
        test_env = dict(os.environ, RUNLEDGER_UI_TOKEN=token)
        if not dev_server:
            base = 'http://127.0.0.1:%d' % api_port
        else:
            test_env['RUNLEDGER_UI_DEV_SERVER'] = '1'
            ui_port = free_port()
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, 'devserver.py'), '--port', str(ui_port),
                                           '--upstream', 'http://127.0.0.1:%d' % api_port]))
            base = 'http://127.0.0.1:%d' % ui_port
            wait_http(base + '/')
        print('run_dev: runledger-local on :%d (data in %s), dashboard at %s' % (api_port, data, base), flush=True)
        return subprocess.call([sys.executable, os.path.join(HERE, 'dashboard_test.py'), base], env=test_env)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == '__main__':
    sys.exit(main())
