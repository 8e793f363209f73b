import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../runtime/log.js';

t.test('secrets are redacted from every log record', async (t) => {
  let out = '';
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  const log = createLogger({ level: 'info', pretty: false, destination: sink }).child({ component: 'test' });
  log.info(
    { password: 'p1', user: { passwordHash: 'scrypt$x', name: 'ann' }, token: 't1', req: { headers: { authorization: 'Bearer abc', cookie: 'sid=1' } } },
    'hello',
  );
  t.notMatch(out, /p1|scrypt\$x|t1"|Bearer abc|sid=1/);
  t.match(out, /"name":"ann"/);
  t.match(out, /"component":"test"/);
  t.match(out, /\[redacted\]/);
});
