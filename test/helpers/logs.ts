import { Writable } from 'node:stream';
import { createLogger } from '../../runtime/log.js';

/** A real pino logger whose records the test can read. */
export function recordingLogger(): { log: ReturnType<typeof createLogger>; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line));
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', pretty: false, destination: sink }), records };
}
