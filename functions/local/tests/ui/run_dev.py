#!/usr/bin/env python3
"""Runs the dashboard test end to end on this machine, in one command (stdlib only to start):

    /root/.cache/runledger/ui-venv/bin/python functions/local/tests/ui/run_dev.py [--ui-server]

It starts runledger-local on a free port with a fresh data dir, makes a token, starts
devserver.py in front of it (or, with --ui-server, uses runledger-local's own UI serving at
`/`), runs dashboard_test.py against it, and stops what it started. The binary is
$RUNLEDGER_LOCAL_BIN, else $CARGO_TARGET_DIR/debug/runledger-local (default target dir
~/.cache/runledger/ci-target). It does not build anything. The Python that runs this must have
Playwright (pip install playwright==1.65.2; Chromium comes from Debian: apt-get install chromium).
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
    ui_server = '--ui-server' in sys.argv[1:]
    target = os.environ.get('CARGO_TARGET_DIR', os.path.expanduser('~/.cache/runledger/ci-target'))
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
        if ui_server:
            base = 'http://127.0.0.1:%d' % api_port
        else:
            ui_port = free_port()
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, 'devserver.py'), '--port', str(ui_port),
                                           '--upstream', 'http://127.0.0.1:%d' % api_port]))
            base = 'http://127.0.0.1:%d' % ui_port
            wait_http(base + '/')
        print('run_dev: runledger-local on :%d (data in %s), dashboard at %s' % (api_port, data, base), flush=True)
        return subprocess.call([sys.executable, os.path.join(HERE, 'dashboard_test.py'), base], env=dict(os.environ, RUNLEDGER_UI_TOKEN=token))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == '__main__':
    sys.exit(main())
