// The HTTP API client: the bearer token, JSON and problem+json handling, 401 sign-out.

const KEY = 'runledger.token';
export const BASE = '/api/v1';

export const auth = {
  get() { try { return sessionStorage.getItem(KEY); } catch { return null; } },
  set(token) { sessionStorage.setItem(KEY, token); },
  clear() { try { sessionStorage.removeItem(KEY); } catch { /* storage unavailable */ } },
};

/** An error answer (RFC 9457 problem) or a network failure. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || 'HTTP ' + status);
    this.status = status;
    this.problem = problem;
  }
}

let unauthorized = () => {};
/** Called with a message whenever the server answers 401 (the token is dropped first). */
export function onUnauthorized(fn) { unauthorized = fn; }
export function signOutFor(message) { auth.clear(); unauthorized(message); }

export const UNAUTHORIZED_MESSAGE =
  'The server refused the token (401): it is missing, expired or not valid for this server. Sign in again.';

async function readProblem(res) {
  const type = res.headers.get('content-type') || '';
  try {
    if (type.includes('json')) {
      const p = await res.json();
      if (p && typeof p === 'object') return p;
    }
    const text = (await res.text()).slice(0, 300);
    return { title: res.statusText || 'HTTP ' + res.status, status: res.status, detail: text };
  } catch {
    return { title: res.statusText || 'HTTP ' + res.status, status: res.status };
  }
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/**
 * fetch('/api/v1' + path) with the token. JSON bodies are encoded; a Blob or string body is
 * sent as is with `contentType`. Resolves to the decoded JSON (null for 204), or the Response
 * with `raw: true`. Rejects with ApiError.
 */
export async function request(path, { method = 'GET', body, headers = {}, contentType, raw = false, signal } = {}) {
  const token = auth.get();
  if (!token) {
    signOutFor('Sign in to continue.');
    throw new ApiError(401, { title: 'Not signed in', status: 401, code: 'unauthorized' });
  }
  const h = { Authorization: 'Bearer ' + token, Accept: 'application/json', ...headers };
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  if (contentType) h['Content-Type'] = contentType;
  let res;
  try {
    res = await fetch(BASE + path, { method, headers: h, body: payload, signal, cache: 'no-store' });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, {
      title: 'The server could not be reached',
      detail: 'Check that runledger is running and try again. (' + (e && e.message) + ')',
      code: 'network_error',
    });
  }
  if (res.status === 401) {
    signOutFor(UNAUTHORIZED_MESSAGE);
    throw new ApiError(401, await readProblem(res));
  }
  if (!res.ok) throw new ApiError(res.status, await readProblem(res));
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const api = {
  get: (path, opts) => request(path, opts),
  post: (path, body = {}, opts) => request(path, { ...opts, method: 'POST', body }),
  put: (path, body, opts) => request(path, { ...opts, method: 'PUT', body }),
  del: (path, opts) => request(path, { ...opts, method: 'DELETE' }),
};

/**
 * Every item of a paged listing, up to `max`, from `cursor` on (the first page without one).
 * `onPage` sees each page as it arrives; `stopped()` ends the paging early (a page left).
 */
export async function fetchAll(path, params = {}, max = 1000, pageSize = 200, { cursor, onPage, stopped } = {}) {
  const items = [];
  do {
    const page = await api.get(path + qs({ ...params, limit: Math.min(pageSize, max - items.length), cursor }));
    items.push(...page.items);
    if (onPage) onPage(page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max && !(stopped && stopped()));
  return { items, next_cursor: cursor || null };
}

/** The caller's quarantines in force, by test case id. */
export async function quarantines() {
  const { items } = await fetchAll('/quarantine', {}, 1000);
  return new Map(items.map((q) => [q.test_case_id, q]));
}
