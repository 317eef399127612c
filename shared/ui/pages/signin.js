import { h, problemBox } from '../dom.js';

export function mount(main, { message, notice, onToken }) {
  const status = h('div', { class: 'signin-status' });
  if (message && notice) status.append(h('p', { class: 'notice', role: 'status' }, message));
  else if (message) status.append(h('p', { class: 'problem', role: 'alert', 'data-testid': 'error' }, message));
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off',
    spellcheck: 'false', 'aria-describedby': 'token-help',
  });
  const button = h('button', { type: 'submit', class: 'btn' }, 'Sign in');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, 'Sign in'),
    status,
    h('div', { class: 'field' },
      h('label', { for: 'token' }, 'Bearer token'),
      input,
      h('p', { id: 'token-help', class: 'small muted' },
        'Paste a runledger token (a JWT). runledger-local prints a sign-in link and a token when it starts; ',
        h('code', null, 'runledger-local token --sub <user>'), ' makes another. The token is kept for this browser tab only.')),
    button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) { input.focus(); return; }
    button.disabled = true;
    status.replaceChildren(h('p', { class: 'msg', role: 'status' }, 'Checking the token…'));
    try {
      await onToken(token);
    } catch (err) {
      // A 401 re-renders this page with its message; show anything else here.
      if (err && err.status !== 401 && form.isConnected) {
        status.replaceChildren(problemBox(err, 'Could not sign in'));
        button.disabled = false;
      }
    }
  });
  main.replaceChildren(form);
  if (!message) input.focus();
}
