import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { resolve } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import type { AdapterType, CheckEnv } from '../adapter.js';
import { formatIssues, type ConfigIssue } from './load.js';
import type { Config } from './schema.js';
import { checkAlarmRules } from '../alarms/check.js';

/**
 * Everything `start` would refuse that the schema cannot see: what each adapter's `check`
 * finds (template and profile files, names they define), references between sections (sync
 * links to their iridium adapter), files the config names (TLS certificates and keys,
 * secrets) and listeners that would take the same port. `outpost check` and the gateway's
 * start run this one function, so they cannot disagree. Reads files; writes, opens and
 * connects nothing.
 */
export interface CheckOptions {
  /** Folder of the config file; default the cwd. */
  configDir?: string;
  /** Relative paths resolve against this, as at start; default `process.cwd()`. */
  cwd?: string;
  /** Collects what is doubtful but may be right (an alarm rule's glob matching no datapoint defined in the file). */
  warnings?: ConfigIssue[];
}

export async function checkConfig(config: Config, adapterTypes: ReadonlyMap<string, AdapterType>, options: CheckOptions = {}): Promise<ConfigIssue[]> {
  const cwd = options.cwd ?? process.cwd();
  const issues: ConfigIssue[] = [];
  await checkAdapters(config, adapterTypes, { cwd, configDir: options.configDir ?? cwd }, issues);
  checkSerialPorts(config, adapterTypes, issues);
  checkSyncLinks(config, issues);
  checkFiles(config, cwd, issues);
  checkListeners(config, issues);
  checkAlarmRules(config, issues, options.warnings ?? []);
  checkDatapointRanges(config, issues);
  return issues;
}

/** The registry refuses a range upside down at start (runtime/datapoints/registry.ts); so does check. */
function checkDatapointRanges(config: Config, issues: ConfigIssue[]): void {
  for (const [index, dp] of config.datapoints.entries()) {
    if (dp.min !== undefined && dp.max !== undefined && dp.min > dp.max)
      issues.push({ path: `datapoints.${index}`, message: `min ${dp.min} is above max ${dp.max}` });
  }
}

/** Runs `checkConfig`; throws CONFIG_INVALID listing every problem by path, as the schema does. */
export async function assertConfigChecks(
  config: Config,
  adapterTypes: ReadonlyMap<string, AdapterType>,
  options: CheckOptions & { source?: string } = {},
): Promise<void> {
  const issues = await checkConfig(config, adapterTypes, options);
  if (issues.length > 0)
    throw new OutpostError('CONFIG_INVALID', `${options.source ?? 'configuration'} is invalid:\n${formatIssues(issues)}`, { details: issues });
}

async function checkAdapters(
  config: Config,
  adapterTypes: ReadonlyMap<string, AdapterType>,
  where: { cwd: string; configDir: string },
  issues: ConfigIssue[],
): Promise<void> {
  const dataDir = resolve(where.cwd, config.dataDir);
  for (const [index, entry] of config.adapters.entries()) {
    // A disabled adapter is not started, so nothing in it can stop the start.
    if (!entry.enabled) continue;
    const type = adapterTypes.get(entry.type);
    if (!type?.check) continue;
    const env: CheckEnv = {
      id: entry.id,
      configDir: where.configDir,
      cwd: where.cwd,
      dataDir,
      gateway: { id: config.gateway.id, timezone: config.gateway.timezone },
    };
    const at = (path: string): string => (path ? `adapters.${index}.${path}` : `adapters.${index}`);
    try {
      for (const p of await type.check(entry.options as never, env)) issues.push({ path: at(p.path), message: p.message });
    } catch (err) {
      issues.push({ path: at(''), message: `cannot be checked: ${(err as Error).message}` });
    }
  }
}

/** A device (serial port) opened by several adapters or buses must be opened with one set of settings. */
function checkSerialPorts(config: Config, adapterTypes: ReadonlyMap<string, AdapterType>, issues: ConfigIssue[]): void {
  const claimed = new Map<string, { path: string; key: string }>();
  for (const [index, entry] of config.adapters.entries()) {
    if (!entry.enabled) continue;
    for (const claim of adapterTypes.get(entry.type)?.ports?.(entry.options as never) ?? []) {
      const path = `adapters.${index}.${claim.path}`;
      const key = JSON.stringify(claim.settings, Object.keys(claim.settings).sort());
      const first = claimed.get(claim.device);
      if (!first) claimed.set(claim.device, { path, key });
      else if (first.key !== key)
        issues.push({ path, message: `${claim.device} is also opened by ${first.path} with other settings (${first.key}, here ${key})` });
    }
  }
}

/** Sync links that name an adapter: it must exist, be an iridium adapter and be enabled. */
function checkSyncLinks(config: Config, issues: ConfigIssue[]): void {
  if (!config.sync.enabled) return;
  config.sync.links.forEach((link, i) => {
    if (link.type !== 'iridium') return;
    const path = `sync.links.${i}.adapter`;
    const target = config.adapters.find((a) => a.id === link.adapter);
    const iridium = config.adapters.filter((a) => a.type === 'iridium').map((a) => a.id);
    const known = iridium.length ? `iridium adapters: ${iridium.join(', ')}` : 'no iridium adapter is configured';
    if (!target) issues.push({ path, message: `no adapter "${link.adapter}" (${known})` });
    else if (target.type !== 'iridium') issues.push({ path, message: `adapter "${link.adapter}" is a ${target.type} adapter, not iridium (${known})` });
    else if (!target.enabled) issues.push({ path, message: `adapter "${link.adapter}" is disabled: the link would never come up` });
  });
}

function readable(file: string, cwd: string): { ok: true; data: Buffer } | { ok: false; message: string } {
  try {
    return { ok: true, data: readFileSync(resolve(cwd, file)) };
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

/** Files the config names: certificates and keys must load as a TLS context, secrets be readable. */
function checkFiles(config: Config, cwd: string, issues: ConfigIssue[]): void {
  const tls = (at: string, files: { certFile?: string; keyFile?: string; caFile?: string }): void => {
    const read: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {};
    let ok = true;
    for (const [key, field] of [
      ['cert', 'certFile'],
      ['key', 'keyFile'],
      ['ca', 'caFile'],
    ] as const) {
      const file = files[field];
      if (file === undefined) continue;
      const r = readable(file, cwd);
      if (r.ok) read[key] = r.data;
      else {
        ok = false;
        issues.push({ path: `${at}.${field}`, message: r.message });
      }
    }
    if (!ok) return;
    // An unparsable CA bundle is not refused by createSecureContext, but verifies nothing.
    if (read.ca && !read.ca.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      issues.push({ path: `${at}.caFile`, message: `${files.caFile} holds no PEM certificate` });
      return;
    }
    try {
      createSecureContext(read);
    } catch (err) {
      const field = read.cert && read.key ? 'certFile' : read.ca ? 'caFile' : 'certFile';
      issues.push({ path: `${at}.${field}`, message: `not a usable certificate/key pair: ${(err as Error).message}` });
    }
  };
  const secret = (at: string, file: string | undefined, minChars = 1): void => {
    if (file === undefined) return;
    const r = readable(file, cwd);
    if (!r.ok) issues.push({ path: at, message: r.message });
    else if (r.data.toString('utf8').trim().length < minChars)
      issues.push({ path: at, message: `${file} holds ${minChars > 1 ? `fewer than ${minChars} characters` : 'nothing'}` });
  };

  if (config.http.tls) tls('http.tls', config.http.tls);
  if (config.broker.mqtts.enabled) tls('broker.mqtts', config.broker.mqtts);
  if (config.sync.enabled) {
    config.sync.links.forEach((link, i) => {
      const at = `sync.links.${i}`;
      if (link.type === 'mqtt') {
        if (link.tls) tls(`${at}.tls`, link.tls);
        secret(`${at}.passwordFile`, link.passwordFile);
        if (link.downlinkAuth && link.downlinkAuth !== 'none') secret(`${at}.downlinkAuth.secretFile`, link.downlinkAuth.secretFile, 16);
      } else if (link.type === 'http') {
        if (link.tls) tls(`${at}.tls`, link.tls);
        if (link.auth.type === 'bearer') {
          if (link.auth.token === undefined && link.auth.tokenFile === undefined)
            issues.push({ path: `${at}.auth`, message: 'auth.bearer needs a token or tokenFile' });
          secret(`${at}.auth.tokenFile`, link.auth.tokenFile);
        } else if (link.auth.type === 'hmac') {
          if (link.auth.secret === undefined && link.auth.secretFile === undefined)
            issues.push({ path: `${at}.auth`, message: 'auth.hmac needs a secret or secretFile' });
          secret(`${at}.auth.secretFile`, link.auth.secretFile);
        }
      }
    });
  }
  if (config.flows.enabled) {
    const f = config.flows as { credentialSecret?: string; credentialSecretFile?: string };
    if (f.credentialSecret === undefined && f.credentialSecretFile === undefined) {
      issues.push({
        path: 'flows.credentialSecret',
        message: 'required when flows are enabled (or flows.credentialSecretFile, or OUTPOST_FLOWS_CREDENTIALSECRET)',
      });
    } else if (f.credentialSecret === undefined) {
      const r = readable(f.credentialSecretFile!, cwd);
      if (!r.ok) issues.push({ path: 'flows.credentialSecretFile', message: r.message });
      else if ((r.data.toString('utf8').split(/\r?\n/)[0]?.trim().length ?? 0) < 16)
        issues.push({ path: 'flows.credentialSecretFile', message: 'the secret (first line) must have at least 16 characters' });
    } else if (f.credentialSecret.length < 16) {
      issues.push({ path: 'flows.credentialSecret', message: 'expected at least 16 characters (e.g. `openssl rand -hex 32`)' });
    }
  }
}

/** The gateway's own listeners: two on one port and overlapping addresses cannot both listen. */
function checkListeners(config: Config, issues: ConfigIssue[]): void {
  const listeners: Array<{ path: string; host: string; port: number }> = [{ path: 'http.port', host: config.http.host, port: config.http.port }];
  if (config.broker.mqtt.enabled) listeners.push({ path: 'broker.mqtt.port', host: config.broker.mqtt.host, port: config.broker.mqtt.port });
  if (config.broker.mqtts.enabled) listeners.push({ path: 'broker.mqtts.port', host: config.broker.mqtts.host, port: config.broker.mqtts.port });
  const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';
  listeners.forEach((l, i) => {
    if (l.port === 0) return; // chosen by the system
    const other = listeners.slice(0, i).find((o) => o.port === l.port && (o.host === l.host || wildcard(o.host) || wildcard(l.host)));
    if (other) issues.push({ path: l.path, message: `port ${l.port} is also ${other.path} (${other.host}); each listener needs its own port` });
  });
}
