import t from 'tap';
import { formatOcppTime, normaliseUnit, parseOcppTime, parseSampledNumber } from '../../../adapters/ocpp/codec.js';
import { chargerKey, readSample } from '../../../adapters/ocpp/mapping.js';
import { authorizeIdTag } from '../../../adapters/ocpp/authorization.js';
import { toCsv } from '../../../adapters/ocpp/routes.js';

t.test('timestamps: offset-less read as UTC, offsets honoured, garbage refused', async (t) => {
  t.equal(parseOcppTime('2024-05-01T10:00:00'), Date.UTC(2024, 4, 1, 10));
  t.equal(parseOcppTime('2024-05-01 10:00'), Date.UTC(2024, 4, 1, 10));
  t.equal(parseOcppTime('2024-05-01T12:00:00+02:00'), Date.UTC(2024, 4, 1, 10));
  t.equal(parseOcppTime('2024-05-01T12:00:00+02'), Date.UTC(2024, 4, 1, 10));
  t.equal(parseOcppTime('2024-05-01T10:00:00.123456789z'), Date.UTC(2024, 4, 1, 10) + 123);
  t.equal(parseOcppTime('yesterday'), undefined);
  t.equal(parseOcppTime('2024-13-45T10:00:00Z'), undefined);
  t.equal(formatOcppTime(Date.UTC(2024, 4, 1, 10)), '2024-05-01T10:00:00.000Z');
});

t.test('sampled values: strings, decimal comma, units', async (t) => {
  t.equal(parseSampledNumber(' 12.5 '), 12.5);
  t.equal(parseSampledNumber('12,5'), 12.5);
  t.equal(parseSampledNumber('1e3'), 1000);
  t.equal(parseSampledNumber('abc'), undefined);
  t.equal(parseSampledNumber(''), undefined);
  t.same(normaliseUnit(1500, 'Wh'), { value: 1.5, unit: 'kWh' });
  t.same(normaliseUnit(7.4, 'kW'), { value: 7400, unit: 'W' });
  t.same(normaliseUnit(300.15, 'K'), { value: 300.15 - 273.15, unit: '°C' });
  t.same(normaliseUnit(25, 'Celcius'), { value: 25, unit: '°C' });
});

t.test('mapping: measurands, phases, locations, defaults, skips', async (t) => {
  t.match(readSample({ value: '1234' }, 'Wh'), { suffix: 'energy', value: 1.234, unit: 'kWh' }, 'default measurand and unit (§7.31)');
  t.match(readSample({ value: '12.5' }, 'kWh'), { suffix: 'energy', value: 12.5, unit: 'kWh' }, 'profile quirk: kWh without unit');
  t.match(readSample({ value: '16', measurand: 'Current.Import', phase: 'L2', unit: 'A' }, 'Wh'), { suffix: 'current_l2', value: 16 });
  t.match(readSample({ value: '231', measurand: 'Voltage', phase: 'L3-N' }, 'Wh'), { suffix: 'voltage_l3', unit: 'V' });
  t.match(readSample({ value: '400', measurand: 'Voltage', phase: 'L1-L2' }, 'Wh'), { suffix: 'voltage_l1_l2' });
  t.match(readSample({ value: '40', measurand: 'Temperature', location: 'Body', unit: 'Celsius' }, 'Wh'), { suffix: 'temperature_body', unit: '°C' });
  t.match(readSample({ value: '80', measurand: 'SoC', location: 'EV', unit: 'Percent' }, 'Wh'), { suffix: 'soc', unit: '%' });
  t.match(readSample({ value: '2', measurand: 'Power.Reactive.Import', unit: 'kvar' }, 'Wh'), { suffix: 'power_reactive_import', value: 2000, unit: 'var' });
  t.match(readSample({ value: 'x', measurand: 'Power.Active.Import' }, 'Wh'), { skip: /not a number/ });
  t.match(readSample({ value: 'abcd', format: 'SignedData' }, 'Wh'), { skip: 'signed data' });
  t.equal(chargerKey('CP-01/Main Hall'), 'cp-01_main_hall');
  t.equal(chargerKey('///'), 'charger');
});

t.test('local authorization list: block wins, expiry, case-insensitive', async (t) => {
  const list = {
    allow: ['Alice', { idTag: 'bob', expiryDate: '2020-01-01T00:00:00Z' }, { idTag: 'carol', parentIdTag: 'FLEET' }],
    block: ['ALICE2', 'mallory'],
    acceptUnknown: false,
  };
  const now = Date.UTC(2024, 0, 1);
  t.same(authorizeIdTag(list, 'alice', now), { status: 'Accepted' });
  t.same(authorizeIdTag(list, 'BOB', now), { status: 'Expired' });
  t.same(authorizeIdTag(list, 'carol', now), { status: 'Accepted', parentIdTag: 'FLEET' });
  t.same(authorizeIdTag(list, 'Mallory', now), { status: 'Blocked' });
  t.same(authorizeIdTag(list, 'eve', now), { status: 'Invalid' });
  t.same(authorizeIdTag({ ...list, acceptUnknown: true }, 'eve', now), { status: 'Accepted' });
  t.same(authorizeIdTag({ ...list, acceptUnknown: true, allow: ['mallory'] }, 'mallory', now), { status: 'Blocked' });
});

t.test('CSV quotes separators and defuses formulas', async (t) => {
  const csv = toCsv([
    {
      id: 1,
      charger: 'CP,1',
      connectorId: 1,
      idTag: '=HYPERLINK("x")',
      authorization: 'Accepted',
      start: 0,
      meterStartWh: 0,
      energyKwh: 0,
      samples: 0,
      samplesDropped: 0,
    },
  ]);
  t.equal(csv.split('\r\n')[1], `1,"CP,1",1,"'=HYPERLINK(""x"")",Accepted,1970-01-01T00:00:00.000Z,,0,,0,,,,`);
});
