// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
//
// openStream(path, handlers) reads `GET /api/v1<path>` as text/event-stream, calls
// onEvent(type, data, id) per event (data parsed as JSON when it is JSON), reconnects with
// `Last-Event-ID` and a growing back-off when the stream drops, and stops for good at
// `event: end` (onEnd) or on close(). Where the server cannot stream (406, as the AWS HTTP API
// answers), it falls back to the JSON long poll of the same path (`?after=&wait=`).

import { auth, BASE, signOutFor, UNAUTHORIZED_MESSAGE } from './api.js';

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** Parses an event stream body; returns true when it saw `event: end`. */
export async function readEvents(body, dispatch, onComment) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { type: '', data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
      if (buf[nl] === '\r' && nl === buf.length - 1) break;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (ev.type === 'end') { reader.cancel().catch(() => {}); return true; }
        if (ev.data.length) dispatch(ev.type || 'message', ev.data.join('\n'), ev.id);
        ev = { type: '', data: [], id: null };
        continue;
      }
      if (line[0] === ':') { onComment(line.slice(1).trim()); continue; }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val[0] === ' ') val = val.slice(1);
      if (field === 'event') ev.type = val;
      else if (field === 'data') ev.data.push(val);
      else if (field === 'id' && !val.includes('\0')) ev.id = val;
    }
  }
}

function parse(data) {
  try { return JSON.parse(data); } catch { return data; }
}

/**
 * handlers: onEvent(type, data, id), onEnd(), onState(state, detail) with state one of
 * 'connecting', 'open', 'retrying', 'ended', 'closed'.
 */
export function openStream(path, { onEvent, onEnd = () => {}, onState = () => {}, after = null } = {}) {
  const stop = new AbortController();
  let lastId = after;
  let delay = 500;
  let lastSeen = Date.now();

  const deliver = (type, data, id) => {
    if (id !== null && id !== undefined) lastId = id;
    delay = 500;
    lastSeen = Date.now();
    onEvent(type, parse(data), id);
  };

  async function longPoll() {
    while (!stop.signal.aborted) {
      const sep = path.includes('?') ? '&' : '?';
      const url = BASE + path + sep + 'wait=25&limit=500&after=' + encodeURIComponent(lastId || 0);
      const res = await fetch(url, { headers: { Authorization: 'Bearer ' + auth.get(), Accept: 'application/json' }, signal: stop.signal, cache: 'no-store' });
      if (res.status === 401) return 'unauthorized';
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const page = await res.json();
      onState('open');
      for (const item of page.items) deliver(item.type, JSON.stringify(item), String(item.seq));
      if (page.terminal) return 'end';
    }
    return 'closed';
  }

  async function run() {
    let mode = 'sse';
    while (!stop.signal.aborted) {
      onState(lastId === null ? 'connecting' : 'retrying');
      try {
        let outcome;
        if (mode === 'sse') {
          const headers = { Authorization: 'Bearer ' + auth.get(), Accept: 'text/event-stream' };
          if (lastId !== null) headers['Last-Event-ID'] = String(lastId);
          const res = await fetch(BASE + path, { headers, signal: stop.signal, cache: 'no-store' });
          const type = res.headers.get('content-type') || '';
          if (res.status === 401) outcome = 'unauthorized';
          else if (res.status === 406 || (res.ok && !type.startsWith('text/event-stream'))) {
            mode = 'poll';
            if (res.body) res.body.cancel().catch(() => {});
            continue;
          } else if (!res.ok) {
            throw new Error('HTTP ' + res.status);
          } else {
            onState('open');
            outcome = (await readEvents(res.body, deliver, () => { lastSeen = Date.now(); })) ? 'end' : 'dropped';
          }
        } else {
          outcome = await longPoll();
        }
        if (outcome === 'unauthorized') { signOutFor(UNAUTHORIZED_MESSAGE); break; }
        if (outcome === 'end') { onState('ended'); onEnd(); return; }
        // Dropped by the server (allowed at any time): resume right away, then back off.
      } catch (e) {
        if (stop.signal.aborted) break;
        onState('retrying', e && e.message);
      }
      await sleep(delay, stop.signal);
      delay = Math.min(delay * 2, 15000);
    }
    onState('closed');
  }

  run();
  return {
    close() { stop.abort(); },
    get lastEventId() { return lastId; },
    get idleMs() { return Date.now() - lastSeen; },
  };
}
