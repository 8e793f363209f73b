import { join } from 'node:path';
import type { CentralConfig } from '../config.js';
import type { GatewayDirectory } from '../gateways.js';
import type { CentralHttp } from '../http/server.js';
import type { Logger } from '../log.js';
import type { CentralStore } from '../store/contract.js';
import { AlarmAcks } from './acks.js';
import { alarmRoutes, type AlarmForwarder } from './alarms.js';
import { assetRoutes } from './assets.js';
import { openWebSecurity, securityRoutes, type WebSecurity } from './security.js';

export interface WebDeps {
  config: CentralConfig;
  http: CentralHttp;
  store: CentralStore;
  gateways: GatewayDirectory;
  log: Logger;
  now: () => number;
}

export interface CentralWeb {
  firstAdmin: WebSecurity['firstAdmin'];
  audit: WebSecurity['audit'];
  security: WebSecurity['security'];
  acks: AlarmAcks;
  /** Where acknowledgements made here go to their site (set once commands are open). */
  forwardAlarmAcks(forwarder: AlarmForwarder): void;
  close(): Promise<void>;
}

/**
 * The web UI of a central that owns its store: logins in front of the API (call before the
 * first `api` route), the login, user and audit routes, the fleet's alarms with
 * acknowledgements, and the UI's files. Closing writes what the audit trail still holds.
 */
export async function openWeb(d: WebDeps): Promise<CentralWeb> {
  const acks = new AlarmAcks(join(d.config.dataDir, 'web', 'alarm-acks.json'));
  await acks.load();
  const web = await openWebSecurity(d.config, d.http, d.log);
  securityRoutes(d.http, web);
  // Commands open after the web's routes (logins go in front of every API route): bound late.
  let forwarder: AlarmForwarder | undefined;
  alarmRoutes({
    http: d.http,
    store: d.store,
    gateways: d.gateways,
    acks,
    audit: web.audit,
    clientAddress: (req) => web.security.client(req).address,
    now: d.now,
    log: d.log,
    forward: { forward: (gateway, alarm, by) => forwarder?.forward(gateway, alarm, by) ?? Promise.resolve(undefined) },
  });
  assetRoutes(d.http);
  return {
    firstAdmin: web.firstAdmin,
    audit: web.audit,
    security: web.security,
    acks,
    forwardAlarmAcks: (f) => {
      forwarder = f;
    },
    close: () => web.close(),
  };
}
