/**
 * Issue 24 item 4: what a charging session cost (adapters/ocpp/session-cost.ts), per interval
 * between energy readings with a time-of-use tariff, or at the start hour without readings.
 */
import t from 'tap';
import { priceReadings, sessionCost, startPricing, type PriceAt } from '../../../adapters/ocpp/session-cost.js';
import { sessionSeries } from '../../../adapters/ocpp/session-series.js';

const H = 3600e3;
const day = Date.UTC(2026, 2, 2); // a Monday, UTC
// Time of use (UTC): 0.20 before 07:00, 0.40 from 07:00.
const tou: PriceAt = (t) => ({ price: (t - day) % (24 * H) < 7 * H ? 0.2 : 0.4, currency: 'EUR' });

t.test('priced per interval at the price of its middle; readings out of order or going back are not priced twice', async (t) => {
  let acc = startPricing(10_000, day + 6 * H); // 06:00, register 10 kWh
  acc = priceReadings(acc, [{ t: day + 6.5 * H, wh: 13_000 }], tou); // 3 kWh, middle 06:15 → 0.20
  acc = priceReadings(acc, [{ t: day + 7.5 * H, wh: 17_000 }], tou); // 4 kWh, middle 07:00 → 0.40
  t.equal(acc.intervals, 2);
  t.same(sessionCost({ start: day + 6 * H, energyKwh: 7, pricing: acc }, tou), { cost: 0.6 + 1.6, currency: 'EUR', costBasis: 'samples' });
  // Out of order, repeated and a register that went back are not priced twice.
  const again = priceReadings(
    acc,
    [
      { t: day + 7.25 * H, wh: 16_000 },
      { t: day + 7.5 * H, wh: 17_000 },
      { t: day + 8 * H, wh: 500 },
    ],
    tou,
  );
  t.equal(again.cost, acc.cost);
});

t.test('without energy readings: the whole session at the price of its start', async (t) => {
  t.same(sessionCost({ start: day + 6.9 * H, energyKwh: 10, pricing: startPricing(0, day + 6.9 * H) }, tou), {
    cost: 2,
    currency: 'EUR',
    costBasis: 'start-hour',
  });
  t.same(
    sessionCost({ start: day + 8 * H, energyKwh: 10 }, tou),
    { cost: 4, currency: 'EUR', costBasis: 'start-hour' },
    'a session stored before costs were kept',
  );
});

t.test('no import price, or a currency change, gives no cost and says why', async (t) => {
  const none: PriceAt = () => undefined;
  t.same(sessionCost({ start: day, energyKwh: 3 }, none), { costNote: 'the site tariff has no import price' });
  const acc = priceReadings(startPricing(0, day), [{ t: day + H, wh: 1000 }], none);
  t.same(sessionCost({ start: day, energyKwh: 1, pricing: acc }, tou), { costNote: 'the site tariff has no import price' });
  let chf = priceReadings(startPricing(0, day), [{ t: day + H, wh: 1000 }], tou);
  chf = priceReadings(chf, [{ t: day + 2 * H, wh: 2000 }], () => ({ price: 0.3, currency: 'CHF' }));
  t.match(sessionCost({ start: day, energyKwh: 2, pricing: chf }, tou), { cost: undefined, costNote: /currency changed during the session \(EUR → CHF\)/ });
});

t.test('session series: power (total, else the phases) and energy since the start', async (t) => {
  const series = sessionSeries(
    [
      {
        t: 2000,
        sampledValue: [
          { value: '1.5', measurand: 'Power.Active.Import', unit: 'kW' },
          { value: '10500', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
        ],
      },
      { t: 1000, sampledValue: [{ value: '10000', measurand: 'Energy.Active.Import.Register' }] },
      {
        t: 3000,
        sampledValue: [
          { value: '700', measurand: 'Power.Active.Import', phase: 'L1', unit: 'W' },
          { value: '800', measurand: 'Power.Active.Import', phase: 'L2', unit: 'W' },
          { value: 'junk', measurand: 'Energy.Active.Import.Register' },
        ],
      },
    ],
    10_000,
    'Wh',
  );
  t.same(series.power, [
    { t: 2000, v: 1500 },
    { t: 3000, v: 1500 },
  ]);
  t.same(series.energyKwh, [
    { t: 1000, v: 0 },
    { t: 2000, v: 0.5 },
  ]);
});
