// Deleting a datapoint with its data (admins): a Delete button, then a confirm step that names
// the datapoint and how many readings are stored, as the gateway counts them
// (GET /api/datapoints/<id>/stored), then DELETE /api/datapoints/<id>.
import { api, get } from './api.js';
import { h } from './dom.js';
import { card } from './widgets.js';

const day = (t) => new Date(t).toLocaleDateString();

/** The "Delete datapoint" card of a datapoint's page; only drawn for admins (the API refuses others anyway). */
export function deleteCard(dp) {
  const path = `/api/datapoints/${encodeURIComponent(dp.id)}`;
  const msg = h('p', { class: 'form-msg', id: 'del-msg', role: 'status', 'aria-live': 'polite' });
  const start = h('button', { type: 'button', class: 'danger', id: 'del-start' }, 'Delete datapoint…');
  const confirmBox = h('div', { id: 'del-confirm' });
  const body = h(
    'div',
    {},
    h('p', { class: 'muted' }, 'Deletes the definition, every stored reading and rollup, and the retained value. It cannot be undone.'),
    h('div', { class: 'toolbar' }, start),
    confirmBox,
    msg,
  );

  const reset = () => {
    confirmBox.replaceChildren();
    start.disabled = false;
    start.focus();
  };

  start.addEventListener('click', async () => {
    start.disabled = true;
    msg.className = 'form-msg';
    msg.textContent = 'Counting stored readings…';
    let stored;
    try {
      stored = await get(`${path}/stored`);
    } catch (err) {
      msg.textContent = err.message;
      msg.classList.add('bad');
      start.disabled = false;
      return;
    }
    if (stored.refusal) {
      msg.textContent = stored.refusal;
      msg.classList.add('bad');
      start.disabled = false;
      return;
    }
    msg.textContent = '';
    const span = stored.points > 0 ? ` from ${day(stored.oldest)} to ${day(stored.newest)}` : '';
    const count = `${stored.points.toLocaleString()} stored ${stored.points === 1 ? 'reading' : 'readings'}`;
    const yes = h('button', { type: 'button', class: 'danger', id: 'del-yes' }, `Delete ${dp.id}`);
    const no = h('button', { type: 'button', id: 'del-no' }, 'Cancel');
    confirmBox.replaceChildren(
      h('p', { id: 'del-question', role: 'alert' }, h('strong', {}, `Delete ${dp.id} and its ${count}${span}?`)),
      stored.note ? h('p', { class: 'muted' }, `It may come back: ${stored.note}.`) : '',
      h('p', { class: 'muted' }, 'Readings already queued for upstream sync are still sent.'),
      h('div', { class: 'toolbar' }, yes, no),
    );
    no.focus();
    no.addEventListener('click', () => {
      msg.textContent = 'Nothing was deleted.';
      reset();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      msg.className = 'form-msg';
      msg.textContent = 'Deleting…';
      try {
        const r = await api('DELETE', path);
        confirmBox.replaceChildren(h('p', {}, h('a', { href: '#/datapoints', id: 'del-back' }, '← All datapoints')));
        msg.textContent = `Deleted ${r.id}: ${r.points.toLocaleString()} ${r.points === 1 ? 'reading' : 'readings'} and ${r.rollups.toLocaleString()} rollup buckets.${r.note ? ` It may come back: ${r.note}.` : ''}`;
        msg.classList.add('good');
      } catch (err) {
        msg.textContent = err.message;
        msg.classList.add('bad');
        reset();
      }
    });
  });
  return card('Delete datapoint', body);
}
