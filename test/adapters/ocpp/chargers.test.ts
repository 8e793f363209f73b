import t from 'tap';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHARGERS_DIR, loadChargerProfiles, matchChargerProfile, parseChargerProfile } from '../../../adapters/ocpp/chargers.js';
import { isOutpostError } from '../../../core/errors.js';

t.test('every charger profile in chargers/ loads and validates', async (t) => {
  const files = readdirSync(CHARGERS_DIR).filter((f) => f.endsWith('.yaml'));
  const profiles = loadChargerProfiles();
  t.equal(profiles.size, files.length, 'one profile per file');
  t.ok(files.length >= 4);
  for (const p of profiles.values()) t.ok(p.minCurrentA >= 6 && p.minCurrentA <= p.maxCurrentA, `${p.name}: current range`);
  for (const p of profiles.values()) t.ok(Number.isInteger(p.connectors) && p.connectors >= 1, `${p.name}: ${p.connectors} connector(s)`);
  // The generic profile bounds chargers that have not booted yet: it must not refuse a two-outlet post.
  t.equal(profiles.get('generic')!.connectors, 2);
});

t.test('profiles are matched from BootNotification, generic otherwise', async (t) => {
  const profiles = loadChargerProfiles();
  t.equal(matchChargerProfile(profiles, { chargePointVendor: 'ABB', chargePointModel: 'Terra AC W22-T-RD-M-0' }).name, 'abb-terra-ac');
  t.equal(matchChargerProfile(profiles, { chargePointVendor: 'Alfen BV', chargePointModel: 'NG910-60023' }).name, 'alfen-eve-single');
  t.equal(matchChargerProfile(profiles, { chargePointVendor: 'Acme', chargePointModel: 'X' }).name, 'generic');
  t.equal(matchChargerProfile(profiles, undefined).name, 'generic');
});

t.test('bad profiles are refused with the file and path named', async (t) => {
  const bad = (text: string) => {
    try {
      parseChargerProfile(text, 'bad.yaml');
      return 'accepted';
    } catch (err) {
      t.ok(isOutpostError(err, 'CONFIG_INVALID'));
      return (err as Error).message;
    }
  };
  t.match(bad('name: x\ndescription: d\nphases: 2\nmaxCurrentA: 32\n'), /bad\.yaml: phases/);
  t.match(bad('name: x\ndescription: d\nphases: 3\nmaxCurrentA: 5\n'), /maxCurrentA/);
  t.match(bad('name: x\ndescription: d\nphases: 3\nmaxCurrentA: 32\nmatch: { vendor: "(" }\n'), /regular expressions/);
  t.match(bad('name: x\ndescription: d\nphases: 3\nmaxCurrentA: 32\ntypo: 1\n'), /typo|Unrecognized/);
  t.match(bad('name: x\ndescription: d\nphases: 3\nmaxCurrentA: 32\nconnectors: 0\n'), /bad\.yaml: connectors/);
  t.equal(parseChargerProfile('name: x\ndescription: d\nphases: 3\nmaxCurrentA: 32\n', 'x.yaml').connectors, 1, 'one connector unless the profile says more');
  t.match(bad('name: x\n  description: : :\n'), /not valid YAML/);

  const dir = await mkdtemp(join(tmpdir(), 'outpost-chargers-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'generic.yaml'), 'name: other\ndescription: d\nphases: 3\nmaxCurrentA: 32\n');
  t.throws(() => loadChargerProfiles(dir), /must match the file name/);
});

t.test('a configured profile name that does not exist stops the adapter from starting', async (t) => {
  const { startOcppGateway } = await import('./helpers.js');
  const gw = await startOcppGateway(t, { chargers: [{ id: 'CP1', securityProfile: 0, profile: 'no-such-charger' }] });
  const { eventually } = await import('../../helpers/gateway.js');
  const status = await eventually(async () => {
    const s = (await gw.status()) as { state: string; error?: { message: string } };
    return s.state === 'error' ? s : undefined;
  });
  t.match(status!.error!.message, /unknown profile "no-such-charger"/);
});
