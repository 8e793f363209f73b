import t from 'tap';
import { Writable } from 'node:stream';
import { z } from 'zod';
import { formatIssueLines, formatZodError, issueLines } from '../../core/zod-error.js';
import { createLogger, warnOnce } from '../../runtime/log.js';

const schema = z.strictObject({ a: z.strictObject({ b: z.number() }), c: z.string().optional() });

t.test('formatZodError: dotted paths, unknown keys at their own path', async (t) => {
  const r = schema.safeParse({ a: { b: 'x', typo: 1 } });
  t.notOk(r.success);
  const text = formatZodError(r.error!);
  t.match(text, /^a\.b: .+; a\.typo: unknown key "typo"$/);
  t.match(formatZodError(r.error!, { prefix: 'sync' }), /^sync\.a\.b: /, 'prefix');
  t.match(formatZodError(r.error!, { prefix: ['adapters', 0] }), /^adapters\.0\.a\.b: /, 'prefix as segments');
});

t.test('the root is named as the caller says', async (t) => {
  const r = z.number().safeParse('x');
  t.match(formatZodError(r.error!), /^\(root\): /);
  t.match(formatZodError(r.error!, { root: 'datapoint' }), /^datapoint: /);
  t.match(formatZodError(r.error!, { root: '' }), /^: /);
});

t.test('issue lines and the config list shape', async (t) => {
  const r = schema.safeParse({ a: { b: 1 }, c: 2, d: 1 });
  const lines = issueLines(r.error!);
  t.same(
    lines.map((l) => l.path),
    ['c', 'd'],
  );
  t.equal(
    formatIssueLines(
      [
        { path: '', message: 'm' },
        { path: 'x', message: 'n' },
      ],
      { indent: '  ', separator: '\n' },
    ),
    '  (root): m\n  x: n',
  );
});

t.test('warnOnce: one line per key, bounded memory', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = createLogger({ level: 'info', pretty: false, destination: sink });
  const warn = warnOnce(log, { max: 2 });
  t.equal(warn('a', { n: 1 }, 'first'), true);
  t.equal(warn('a', { n: 2 }, 'first'), false, 'the repeat is not logged');
  t.equal(warn('b', {}, 'second'), true);
  t.equal(warn.size, 2);
  t.equal(warn('c', {}, 'third'), true, 'past max: forgets and logs');
  t.equal(warn.size, 1);
  t.equal(warn('a', {}, 'first'), true, 'forgotten kinds log once more');
  await new Promise((r) => setImmediate(r));
  t.same(
    lines.map((l) => [l.level, l.msg]),
    [
      [40, 'first'],
      [40, 'second'],
      [40, 'third'],
      [40, 'first'],
    ],
  );
  let current = log;
  const lazy = warnOnce(() => current);
  current = log.child({ component: 'x' });
  lazy('k', {}, 'lazy');
  await new Promise((r) => setImmediate(r));
  t.equal(lines.at(-1)?.component, 'x', 'the logger is looked up when logging');
});
