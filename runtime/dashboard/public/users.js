// Users page (admins): users (add, role, remove) and API tokens (create, shown once; revoke).
import { api, get, post } from './api.js';
import { h, formatTime } from './dom.js';
import { card } from './widgets.js';

export async function users(main, _arg, { me }) {
  main.append(h('h1', {}, 'Users'));
  if (me.role !== 'admin') {
    main.append(h('p', { class: 'error' }, 'Only admins manage users.'));
    return;
  }
  const list = h('div');
  const tokenList = h('div');
  const refresh = async () => {
    const [u, tk] = await Promise.all([get('/api/users'), get('/api/tokens')]);
    list.replaceChildren(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'people', id: 'users' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['User', 'Role', 'Changed', ''].map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          h(
            'tbody',
            {},
            u.items.map((user) => {
              const role = h(
                'select',
                { 'aria-label': `Role of ${user.username}` },
                ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r, selected: r === user.role }, r)),
              );
              role.addEventListener('change', () =>
                act(() => api('PATCH', `/api/users/${encodeURIComponent(user.username)}`, { role: role.value }), `${user.username} is now ${role.value}`),
              );
              const del = h('button', { type: 'button', class: 'danger', disabled: user.username === me.username }, 'Remove');
              del.addEventListener(
                'click',
                () =>
                  confirm(`Remove ${user.username}?`) &&
                  act(() => api('DELETE', `/api/users/${encodeURIComponent(user.username)}`), `${user.username} removed`),
              );
              return h(
                'tr',
                {},
                h('th', { scope: 'row' }, user.username),
                h('td', {}, role),
                h('td', { class: 'time' }, formatTime(user.updatedAt)),
                h('td', {}, del),
              );
            }),
          ),
        ),
      ),
    );
    tokenList.replaceChildren(
      tk.items.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'people', id: 'tokens' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Token', 'Name', 'Role', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)),
                ),
              ),
              h(
                'tbody',
                {},
                tk.items.map((t) => {
                  const del = h('button', { type: 'button', class: 'danger' }, 'Revoke');
                  del.addEventListener('click', () => act(() => api('DELETE', `/api/tokens/${t.id}`), `token ${t.name} revoked`));
                  return h(
                    'tr',
                    {},
                    h('td', { class: 'mono' }, t.id),
                    h('td', {}, t.name),
                    h('td', {}, t.role),
                    h('td', { class: 'time' }, formatTime(t.createdAt)),
                    h('td', {}, del),
                  );
                }),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No API tokens.'),
    );
  };
  const msg = h('p', { class: 'form-msg', role: 'status', 'aria-live': 'polite' });
  const act = async (fn, done) => {
    msg.className = 'form-msg';
    try {
      const r = await fn();
      msg.textContent = typeof done === 'function' ? done(r) : done;
      msg.classList.add('good');
      await refresh();
      return true;
    } catch (err) {
      msg.textContent = err.message;
      msg.classList.add('bad');
      await refresh();
      return false;
    }
  };
  const name = h('input', { id: 'nu-name', autocomplete: 'off', required: true, autocapitalize: 'none' });
  const pw = h('input', { id: 'nu-pass', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' });
  const role = h(
    'select',
    { id: 'nu-role' },
    ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)),
  );
  const add = h(
    'form',
    { class: 'inline', novalidate: true },
    h('label', { for: 'nu-name' }, 'Username'),
    name,
    h('label', { for: 'nu-pass' }, 'Password'),
    pw,
    h('label', { for: 'nu-role' }, 'Role'),
    role,
    h('button', { type: 'submit' }, 'Add user'),
  );
  add.addEventListener('submit', (e) => {
    e.preventDefault();
    act(() => post('/api/users', { username: name.value.trim(), password: pw.value, role: role.value }), `${name.value} added`).then((ok) => ok && add.reset());
  });
  const tname = h('input', { id: 'nt-name', autocomplete: 'off', required: true });
  const trole = h(
    'select',
    { id: 'nt-role' },
    ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)),
  );
  const shown = h('output', { class: 'mono secret', id: 'nt-secret' });
  const tform = h(
    'form',
    { class: 'inline' },
    h('label', { for: 'nt-name' }, 'Token name'),
    tname,
    h('label', { for: 'nt-role' }, 'Role'),
    trole,
    h('button', { type: 'submit' }, 'Create token'),
  );
  tform.addEventListener('submit', (e) => {
    e.preventDefault();
    act(
      () => post('/api/tokens', { name: tname.value, role: trole.value }),
      (r) => {
        shown.textContent = r.token;
        return `Token ${r.name} created: copy it now, it is shown only once.`;
      },
    );
  });
  main.append(msg, card('Users', list, add), card('API tokens', tokenList, tform, shown));
  await refresh();
}
