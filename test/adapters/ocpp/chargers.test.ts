import t from 'tap';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHARGERS_DIR, loadChargerProfiles, matchChargerProfile, parseChargerProfile } from '../../../adapters/ocpp/chargers.js';
import { isOutpostError } from '../../../core/errors.js';
import { tempDir } from '../../helpers/teardown.js';

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

  const dir = await tempDir(t, 'outpost-chargers-');
  await writeFile(join(dir, 'generic.yaml'), 'name: other\ndescription: d\nphases: 3\nmaxCurrentA: 32\n');
  t.throws(() => loadChargerProfiles(dir), /must match the file name/);
});

t.test('a configured profile name that does not exist stops the gateway from starting (what `outpost check` says)', async (t) => {
  const { startOcppGateway } = await import('./helpers.js');
  await t.rejects(startOcppGateway(t, { chargers: [{ id: 'CP1', securityProfile: 0, profile: 'no-such-charger' }] }), {
    code: 'CONFIG_INVALID',
    message: /adapters\.0\.chargers\.0\.profile: charger "CP1": unknown profile "no-such-charger"/,
  });
});
