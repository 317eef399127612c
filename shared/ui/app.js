// The shell: sign-in, the `#token=` link, hash routing, the nav and the flash message.

import { auth, api, onUnauthorized } from './api.js';
import { h, msg, problemBox, setTitle } from './dom.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signout = document.getElementById('signout');
const flashEl = document.getElementById('flash');

const routes = [
  [/^\/runs\/?$/, 'runs', () => import('./pages/runs.js')],
  [/^\/runs\/([^/]+)$/, 'runs', () => import('./pages/run.js')],
  [/^\/test-cases\/([^/]+)$/, 'runs', () => import('./pages/testcase.js')],
  [/^\/flaky\/?$/, 'flaky', () => import('./pages/flaky.js')],
  [/^\/import\/?$/, 'import', () => import('./pages/import.js')],
];

let cleanup = null;
let generation = 0;
let signInMessage = '';
let firstRoute = true;

let flashKeep = false;
function flash(text) {
  flashKeep = !!text;
  flashEl.textContent = '';
  if (text) flashEl.append(h('p', null, text, ' ', h('button', { type: 'button', class: 'link', onclick: () => flash('') }, 'Dismiss')));
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** A `#token=<jwt>` link (the local server prints one): keep the token, clear the address bar. */
function takeTokenFromHash() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return false;
  auth.set(decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search + '#/runs');
  signInMessage = '';
  return true;
}

function unmount() {
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } }
  cleanup = null;
}

function showSignIn(message, notice = false) {
  unmount();
  generation++;
  nav.hidden = true;
  signout.hidden = true;
  setTitle('Sign in');
  import('./pages/signin.js').then((m) => {
    cleanup = m.mount(main, { message, notice, onToken: signIn });
  });
}

async function signIn(token) {
  auth.set(token.trim());
  // Check the token with a cheap call before showing anything.
  await api.get('/executions?limit=1');
  signInMessage = '';
  if (!location.hash.startsWith('#/') || location.hash === '#/signin') history.replaceState(null, '', '#/runs');
  route();
}

onUnauthorized((message) => {
  signInMessage = message;
  showSignIn(message);
});

async function route() {
  if (takeTokenFromHash()) { /* the hash is now #/runs */ }
  if (!auth.get()) { showSignIn(signInMessage); return; }
  const raw = location.hash.replace(/^#/, '') || '/runs';
  if (raw === 'main') return; // the skip link
  const [path, query = ''] = raw.split('?');
  const found = routes.find(([re]) => re.test(path));
  if (!found) { history.replaceState(null, '', '#/runs'); return route(); }
  const [re, section, load] = found;
  const params = path.match(re).slice(1).map(decodeURIComponent);
  unmount();
  if (!flashKeep) flashEl.textContent = '';
  flashKeep = false;
  const gen = ++generation;
  nav.hidden = false;
  signout.hidden = false;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.route === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren(msg('Loading…'));
  let mod;
  try {
    mod = await load();
  } catch (e) {
    main.replaceChildren(problemBox(e, 'Could not load this page'));
    return;
  }
  if (gen !== generation) return;
  main.replaceChildren();
  cleanup = mod.mount(main, { params, query: new URLSearchParams(query), navigate, flash }) || null;
  if (!firstRoute) {
    const heading = main.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
    window.scrollTo(0, 0);
  }
  firstRoute = false;
}

signout.addEventListener('click', () => {
  auth.clear();
  flash('');
  signInMessage = '';
  history.replaceState(null, '', '#/runs');
  showSignIn('You are signed out.', true);
});

document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  const target = main.querySelector('h1') || main;
  if (target !== main) target.tabIndex = -1;
  target.focus();
});

window.addEventListener('hashchange', route);
route();
