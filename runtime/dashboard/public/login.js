// The login screen and the page cleanups, shared by the gateway's dashboard (app.js) and
// Outpost Central's web UI (central/web/public/app.js).
import { get, post, setCsrf } from './api.js';
import { h } from './dom.js';

/**
 * The login screen under `title`, `notice` (why it shows: logged out, session ended) in its
 * message line. Once the server takes the password, `loggedIn(me)` gets who is logged in
 * (GET /api/auth/me); a refusal is said in the message line and the password cleared.
 * Returns the element to show and `focus` for after it is shown.
 */
export function loginScreen(title, notice, loggedIn) {
  const msg = h('p', { class: 'form-msg', role: 'alert', 'aria-live': 'assertive' }, notice ?? '');
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, title),
    h('label', { for: 'login-user' }, 'Username'),
    user,
    h('label', { for: 'login-pass' }, 'Password'),
    pass,
    h('button', { type: 'submit' }, 'Log in'),
    msg,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    try {
      const session = await post('/api/auth/login', { username: user.value.trim(), password: pass.value });
      setCsrf(session.csrf);
      await loggedIn(await get('/api/auth/me'));
    } catch (err) {
      msg.textContent = err.message;
      pass.value = '';
      pass.focus();
    }
  });
  return { element: h('main', { id: 'main', class: 'login-wrap' }, form), focus: () => user.focus() };
}

/** Runs and forgets a page's cleanups (timers, live listeners, charts); one that fails does not stop the others. */
export function runCleanups(cleanups) {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.error('cleanup failed', err);
    }
  }
}
