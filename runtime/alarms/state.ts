// One alarm's state, as the engine keeps it and as it is published on the datapoint
// `alarm.<id>` (the published value is the state without its id). The stored newest value of
// that datapoint is what a restart restores: the alarm's state lives where every other
// reading lives (fsynced by storage), and goes upstream like one.
import { z } from 'zod';
import type { AlarmRule, AlarmSeverity } from './config.js';

/** The datapoint an alarm is published on. */
export const ALARM_DATAPOINT_PREFIX = 'alarm.';
/** The registry owner of alarm datapoints: MQTT clients and adapters cannot write them. */
export const ALARM_OWNER = 'alarms';
/** Subjects (datapoints, adapters) named on one alarm, at most. */
export const MAX_SUBJECTS = 20;

export function alarmDatapoint(id: string): string {
  return `${ALARM_DATAPOINT_PREFIX}${id}`;
}

export type AlarmSource = 'rule' | 'flows';

export interface AlarmState {
  id: string;
  /** A configured rule (`alarms.rules`) or a Node-RED `outpost alarm` node. */
  source: AlarmSource;
  /** Rule alarms: the rule's type. */
  type?: AlarmRule['type'];
  severity: AlarmSeverity;
  message: string;
  active: boolean;
  /** When `active` last changed (or when the alarm was first known). */
  since: number;
  /** When it was last raised; absent: never raised. */
  raisedAt?: number;
  /** When it last cleared after being raised. */
  clearedAt?: number;
  /** Whether someone acknowledged the current (or last) raise; a new raise resets it. */
  acknowledged: boolean;
  ackedBy?: string;
  ackedAt?: number;
  /** What broke the rule: datapoints beyond the limit or stale, adapters down (at most MAX_SUBJECTS). */
  subjects?: string[];
  /** Threshold rules: the reading that raised it. */
  value?: number;
  /** Flows alarms: who raised or cleared it last (`flow:<node id>`). */
  by?: string;
}

/** The datapoint value: the state without its id (the id is in the datapoint's). */
export type AlarmValue = Omit<AlarmState, 'id'>;

const storedValue = z.object({
  source: z.enum(['rule', 'flows']),
  type: z.enum(['threshold', 'stale', 'adapter']).optional(),
  severity: z.enum(['warning', 'alarm']),
  message: z.string(),
  active: z.boolean(),
  since: z.number(),
  raisedAt: z.number().optional(),
  clearedAt: z.number().optional(),
  acknowledged: z.boolean(),
  ackedBy: z.string().optional(),
  ackedAt: z.number().optional(),
  subjects: z.array(z.string()).max(MAX_SUBJECTS).optional(),
  value: z.number().optional(),
  by: z.string().optional(),
});

/** A stored alarm value read back at start; undefined when it is not one (logged by the caller). */
export function parseStoredAlarm(id: string, v: unknown): AlarmState | undefined {
  const parsed = storedValue.safeParse(v);
  return parsed.success ? { id, ...parsed.data } : undefined;
}

export function alarmValue(state: AlarmState): AlarmValue {
  const { id: _id, ...value } = state;
  return value;
}

/** Order on the page and in the banner: alarms before warnings, newest first. */
export function byUrgency(a: AlarmState, b: AlarmState): number {
  return (a.severity === b.severity ? 0 : a.severity === 'alarm' ? -1 : 1) || (b.raisedAt ?? b.since) - (a.raisedAt ?? a.since);
}
