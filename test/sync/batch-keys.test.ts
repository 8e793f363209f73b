import t from 'tap';
import { batchKey, priorityKey } from '../../runtime/sync/link.js';

const T0 = Date.UTC(2025, 0, 1);
const GATEWAY_ID = 'gw1';

t.test('a priority batch never carries the key of the history batch of the same range', async (t) => {
  const records = [
    { seq: 5, id: 'a.x', t: T0, v: 1 },
    { seq: 9, id: 'a.y', t: T0, v: 2 },
  ];
  const live = priorityKey(GATEWAY_ID, records);
  t.not(live, batchKey(GATEWAY_ID, 5, 9), 'a receiver dropping requests by key would otherwise drop seqs 6-8 of the history batch');
  t.equal(
    live,
    priorityKey(
      GATEWAY_ID,
      records.map((r) => ({ ...r })),
    ),
    'derived from the records: the same pick, the same key',
  );
  t.not(live, priorityKey(GATEWAY_ID, [records[0]!, { ...records[1]!, seq: 8 }, records[1]!]), 'another pick of the same range, another key');
});
