import { compileGlobs, isGlob } from '../../core/glob.js';
import type { Config } from '../config/schema.js';
import { ALARM_DATAPOINT_PREFIX } from './state.js';

interface Issue {
  path: string;
  message: string;
}

/**
 * Cross-references of `alarms.rules` that the schema cannot see (run by runtime/config/check.ts,
 * so `outpost check` and the start agree):
 *
 * - errors: an adapter rule naming no configured adapter; a rule watching an alarm datapoint
 *   (`alarm.<rule id>`: rules never see alarms, or one would feed itself);
 * - warnings: a glob that matches none of the datapoints defined in the file, an adapter rule
 *   on a disabled adapter. Adapters' datapoints are only known once they run, so a datapoint
 *   from the file is all a check can compare with; the engine says at run time (a minute
 *   after start, in the log and the event log) which rules still match nothing.
 */
export function checkAlarmRules(config: Config, issues: Issue[], warnings: Issue[]): void {
  const defined = config.datapoints.map((dp) => dp.id);
  const ruleIds = new Set(config.alarms.rules.map((r) => r.id));
  const adapterIds = config.adapters.map((a) => a.id);
  config.alarms.rules.forEach((rule, i) => {
    const at = `alarms.rules.${i}`;
    if (rule.type === 'adapter') {
      if (rule.adapter === '*') return;
      const adapter = config.adapters.find((a) => a.id === rule.adapter);
      if (!adapter)
        issues.push({
          path: `${at}.adapter`,
          message: `no adapter "${rule.adapter}" (${adapterIds.length ? `adapters: ${adapterIds.join(', ')}` : 'no adapter is configured'}; * for any)`,
        });
      else if (!adapter.enabled) warnings.push({ path: `${at}.adapter`, message: `adapter "${rule.adapter}" is disabled: the rule never fires` });
      return;
    }
    const pattern = rule.datapoint;
    const alarmTarget = pattern.startsWith(ALARM_DATAPOINT_PREFIX) && [...ruleIds].some((id) => globMatches(pattern, `${ALARM_DATAPOINT_PREFIX}${id}`));
    if (alarmTarget) {
      issues.push({ path: `${at}.datapoint`, message: `${pattern} is an alarm datapoint: rules do not watch alarms (an alarm's state is not a reading)` });
      return;
    }
    if (isGlob(pattern) && !defined.some(compileGlobs([pattern])))
      warnings.push({
        path: `${at}.datapoint`,
        message: `${pattern} matches none of the datapoints defined here; it must match an adapter's or an MQTT device's (checked a minute after start)`,
      });
  });
}

function globMatches(pattern: string, id: string): boolean {
  return isGlob(pattern) ? compileGlobs([pattern])(id) : pattern === id;
}
