#!/usr/bin/env python3
"""Dev server for the dashboard (stdlib only).

Serves shared/ui/ the way runledger-local is meant to: `/` is index.html with `{{ASSETS}}`
replaced by `/assets/dev`, `/assets/dev/<file>` is shared/ui/<file>, every page answer carries the
strict Content-Security-Policy, and /api/* is proxied (streaming, so Server-Sent Events pass
through as they happen) to a runledger server.

    python3 functions/local/tests/ui/devserver.py --port 8687 --upstream http://127.0.0.1:8686

--gzip compresses the UI's own files when the browser accepts it (off by default: the real
server's compression is what counts).
"""

import argparse
import gzip
import http.client
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'shared', 'ui'))
PREFIX = '/assets/dev'
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'")
TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
         '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json'}
HOP = {'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailers',
       'transfer-encoding', 'upgrade', 'host', 'content-length'}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'runledger-ui-dev'

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write('devserver: ' + (fmt % args) + '\n')

    # ---- static ----
    def send_file(self, data, ctype, cache):
        gz = self.server.gzip and 'gzip' in self.headers.get('accept-encoding', '') and len(data) > 256
        if gz:
            data = gzip.compress(data, 6)
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Content-Security-Policy', CSP)
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('Referrer-Policy', 'no-referrer')
        self.send_header('Cache-Control', cache)
        if gz:
            self.send_header('Content-Encoding', 'gzip')
            self.send_header('Vary', 'Accept-Encoding')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    def not_found(self):
        body = b'{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no such file"}'
        self.send_response(404)
        self.send_header('Content-Type', 'application/problem+json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def static(self, path):
        if path in ('/', '/index.html'):
            with open(os.path.join(ROOT, 'index.html'), 'rb') as f:
                html = f.read().replace(b'{{ASSETS}}', PREFIX.encode())
            return self.send_file(html, TYPES['.html'], 'no-cache')
        if path.startswith(PREFIX + '/'):
            rel = urllib.parse.unquote(path[len(PREFIX) + 1:])
            full = os.path.normpath(os.path.join(ROOT, rel))
            if full.startswith(ROOT + os.sep) and os.path.isfile(full) and not rel.endswith('index.html'):
                with open(full, 'rb') as f:
                    data = f.read()
                ext = os.path.splitext(full)[1]
                return self.send_file(data, TYPES.get(ext, 'application/octet-stream'), 'no-cache')
        return self.not_found()

    # ---- proxy ----
    def proxy(self):
        up = self.server.upstream
        length = int(self.headers.get('content-length') or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            res = conn.getresponse()
        except OSError as e:
            msg = ('{"type":"about:blank","title":"Bad Gateway","status":502,"code":"upstream_unreachable","detail":"%s"}' % str(e).replace('"', "'")).encode()
            self.send_response(502)
            self.send_header('Content-Type', 'application/problem+json')
            self.send_header('Content-Length', str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(res.status, res.reason)
        for k, v in res.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        streaming = res.getheader('content-length') is None
        if streaming:
            # Unknown length (an event stream): pass chunks through as they come, then close.
            self.send_header('Connection', 'close')
            self.close_connection = True
        else:
            self.send_header('Content-Length', res.getheader('content-length'))
        self.end_headers()
        try:
            if self.command == 'HEAD':
                return
            while True:
                chunk = res.read1(65536) if streaming else res.read(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
                if streaming:
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            conn.close()

    def dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith('/api/'):
            return self.proxy()
        if self.command not in ('GET', 'HEAD'):
            self.send_response(405)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        return self.static(path)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = dispatch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--port', type=int, default=8687)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--upstream', default=os.environ.get('RUNLEDGER_UPSTREAM', 'http://127.0.0.1:8686'))
    ap.add_argument('--gzip', action='store_true')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.upstream = urllib.parse.urlsplit(args.upstream)
    srv.gzip = args.gzip
    srv.verbose = args.verbose
    print('devserver: http://%s:%d/ (UI from %s, API from %s)' % (args.host, srv.server_address[1], ROOT, args.upstream), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
