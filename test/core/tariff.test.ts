import t from 'tap';
import { priceAt, priceScheduleSchema, tariffSchema, localMinute, periodEdges, type PriceSchedule } from '../../core/tariff.js';
import { formatZodError } from '../../core/zod-error.js';

const BERLIN = 'Europe/Berlin';
/** 2025-06-10 is a Tuesday; Berlin is UTC+2 in June. */
const berlin = (day: number, hh: number, mm = 0): number => Date.UTC(2025, 5, day, hh - 2, mm);

const schedule = (raw: unknown): PriceSchedule => priceScheduleSchema.parse(raw);

t.test('a flat price is the price at every moment', async (t) => {
  t.strictSame(priceAt(0.3, berlin(10, 3), BERLIN), { price: 0.3 });
  t.strictSame(priceAt(schedule({ default: 0.25, periods: [] }), berlin(10, 12), BERLIN), { price: 0.25 });
});

t.test('time-of-use: the first period covering a moment sets the price, the default the rest', async (t) => {
  const tou = schedule({
    default: 0.3,
    periods: [
      { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '17:00', to: '21:00', price: 0.5, name: 'peak' },
      { from: '22:00', to: '06:00', price: 0.2, name: 'night' },
      { from: '20:00', to: '23:00', price: 9, name: 'shadowed' },
    ],
  });
  t.strictSame(priceAt(tou, berlin(10, 16, 59), BERLIN), { price: 0.3 }, 'Tuesday 16:59: default');
  t.strictSame(priceAt(tou, berlin(10, 17), BERLIN), { price: 0.5, period: 'peak' }, 'Tuesday 17:00: peak starts (from is inclusive)');
  t.strictSame(priceAt(tou, berlin(10, 20, 59), BERLIN), { price: 0.5, period: 'peak' }, 'an earlier period wins over a later overlapping one');
  t.strictSame(priceAt(tou, berlin(10, 21), BERLIN), { price: 9, period: 'shadowed' }, 'to is exclusive: 21:00 is past the peak');
  t.strictSame(priceAt(tou, berlin(10, 22), BERLIN), { price: 0.2, period: 'night' }, '22:00: night starts');
  t.strictSame(priceAt(tou, berlin(11, 0, 15), BERLIN), { price: 0.2, period: 'night' }, '00:15: the night period wraps midnight');
  t.strictSame(priceAt(tou, berlin(11, 5, 59), BERLIN), { price: 0.2, period: 'night' }, '05:59: still night');
  t.strictSame(priceAt(tou, berlin(11, 6), BERLIN), { price: 0.3 }, '06:00: night is over');
  t.strictSame(priceAt(tou, berlin(14, 18), BERLIN), { price: 0.3 }, 'Saturday 18:00: peak is weekdays only');
  t.strictSame(priceAt(tou, berlin(14, 20, 30), BERLIN), { price: 9, period: 'shadowed' }, 'Saturday 20:30: the later period, unshadowed');
  t.strictSame(priceAt(tou, berlin(14, 17), BERLIN), { price: 0.3 }, 'Saturday 17:00: default');
});

t.test('day filters of a period wrapping midnight belong to the day it starts on', async (t) => {
  const fridayNight = schedule({ default: 1, periods: [{ days: ['fri'], from: '22:00', to: '02:00', price: 0.1 }] });
  // 2025-06-13 is a Friday.
  t.equal(priceAt(fridayNight, berlin(13, 23), BERLIN).price, 0.1, 'Friday 23:00');
  t.equal(priceAt(fridayNight, berlin(14, 1, 45), BERLIN).price, 0.1, 'Saturday 01:45 is still Friday night');
  t.equal(priceAt(fridayNight, berlin(14, 2), BERLIN).price, 1, 'Saturday 02:00 ends it');
  t.equal(priceAt(fridayNight, berlin(14, 23), BERLIN).price, 1, 'Saturday 23:00 is not a Friday night');
  t.equal(priceAt(fridayNight, berlin(13, 1), BERLIN).price, 1, 'Friday 01:00 belongs to Thursday night');
});

t.test('local wall-clock time on DST days', async (t) => {
  const tou = schedule({
    default: 0.3,
    periods: [
      { from: '02:00', to: '03:00', price: 0.1 },
      { from: '03:00', to: '04:00', price: 0.7 },
    ],
  });
  // 2025-03-30: Berlin goes from 02:00 CET to 03:00 CEST; 01:00 UTC is 03:00 local.
  t.strictSame(localMinute(Date.UTC(2025, 2, 30, 0, 59), BERLIN), { day: 'sun', minute: 119 }, '00:59 UTC is 01:59 CET');
  t.strictSame(localMinute(Date.UTC(2025, 2, 30, 1, 0), BERLIN), { day: 'sun', minute: 180 }, '01:00 UTC is 03:00 CEST');
  t.equal(priceAt(tou, Date.UTC(2025, 2, 30, 1, 0), BERLIN).price, 0.7, 'the hour after the skipped one is priced 03:00-04:00');
  // 2025-10-26: 03:00 CEST goes back to 02:00 CET; 02:00-03:00 local happens twice.
  t.equal(priceAt(tou, Date.UTC(2025, 9, 26, 0, 30), BERLIN).price, 0.1, '02:30 CEST');
  t.equal(priceAt(tou, Date.UTC(2025, 9, 26, 1, 30), BERLIN).price, 0.1, '02:30 CET, the repeated hour, same price');
  t.equal(priceAt(tou, Date.UTC(2025, 9, 26, 2, 30), BERLIN).price, 0.7, '03:30 CET');
  t.equal(priceAt(tou, Date.UTC(2025, 9, 26, 3, 30), BERLIN).price, 0.3, '04:30 CET: default');
});

t.test('the schema refuses what cannot be priced per 15 min interval, with the reason', async (t) => {
  const refused = (raw: unknown) => {
    const r = tariffSchema.safeParse(raw);
    return r.success ? undefined : formatZodError(r.error);
  };
  t.match(refused({ import: { default: 0.3, periods: [{ from: '07:10', to: '08:00', price: 0.5 }] } }), /quarter hour/);
  t.match(refused({ import: { default: 0.3, periods: [{ from: '7:00', to: '08:00', price: 0.5 }] } }), /HH:MM/);
  t.match(refused({ import: { default: 0.3, periods: [{ from: '08:00', to: '08:00', price: 0.5 }] } }), /from and to must differ/);
  t.match(
    refused({ import: { default: 0.3, periods: [{ days: ['monday'], from: '08:00', to: '09:00', price: 0.5 }] } }),
    /^import\.periods\.0\.days\.0: .*"mon"/,
    'a mistake inside the periods is named where it is',
  );
  t.match(refused({ import: 'cheap' }), /^import: expected a price per kWh \(a number\) or \{ default, periods \}/);
  t.strictSame(tariffSchema.parse({ export: 0.08 }).export, { default: 0.08, periods: [] }, 'a number is a flat price');
  t.match(refused({ currency: 'euro' }), /ISO 4217/);
  t.equal(refused({ import: { default: 0.3, periods: [{ from: '07:45', to: '24:00', price: 0.5 }] } }), undefined, 'quarter hours and 24:00 pass');
  t.strictSame(tariffSchema.parse({}), { currency: 'EUR' }, 'no prices: nothing is priced');
  t.strictSame(periodEdges(schedule({ default: 0, periods: [{ from: '07:45', to: '24:00', price: 1 }] })), [465, 1440]);
  t.strictSame(periodEdges(0.3), []);
});
