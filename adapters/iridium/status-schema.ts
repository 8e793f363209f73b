import type { StatusSchema } from '../../runtime/adapter.js';
import type { StatusFieldsOf } from '../../runtime/status-schema.js';
import type { LinkState } from './session.js';

/** The status `info` of an `iridium` adapter (index.ts `refreshStatus`). */
export interface IridiumStatusInfo {
  /** Absent when the modem did not give one (AT+CGSN). */
  imei?: string;
  state: LinkState;
  /** Messages waiting to be sent (MO queue). */
  queued: number;
  creditsToday: number;
  creditsMonth: number;
  creditsMtToday: number;
  ringAlerts: number;
  ringsDeferred: number;
  /** +CSQ bars 0-5, once read. */
  signal?: number;
}

const LINK_STATE: Record<LinkState, string> = {
  starting: 'starting',
  idle: 'idle (ready)',
  session: 'in a session',
  backoff: 'backing off after a failed session',
  waiting: 'waiting (gateway busy)',
  no_signal: 'no signal',
  budget: 'credit budget reached',
  account_error: 'account or subscription problem',
  down: 'modem down',
  stopped: 'stopped',
};

const fields: StatusFieldsOf<IridiumStatusInfo> = {
  state: {
    label: 'Link',
    enum: LINK_STATE,
    tones: { idle: 'good', session: 'good', no_signal: 'warn', budget: 'warn', backoff: 'warn', account_error: 'bad', down: 'bad' },
  },
  signal: { label: 'Signal', format: 'count', unit: 'of 5 bars' },
  queued: { label: 'Messages queued', format: 'count' },
  creditsToday: { label: 'Credits today', format: 'count', unit: 'credits' },
  creditsMonth: { label: 'Credits this month', format: 'count', unit: 'credits' },
  creditsMtToday: { label: 'MT credits today', format: 'count', unit: 'credits', help: 'Credits spent on mobile-terminated (downlink) fetches today' },
  ringAlerts: { label: 'Ring alerts', format: 'count' },
  ringsDeferred: {
    label: 'Ring alerts deferred',
    format: 'count',
    warnAbove: 0,
    help: 'Answered at the next MO session: the MT share of the budget was spent (a ring flood?)',
  },
  imei: { label: 'IMEI' },
};

export const iridiumStatusSchema: StatusSchema = { fields };
