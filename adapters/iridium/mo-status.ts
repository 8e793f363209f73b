/**
 * What an MO status of +SBDIX means for the session policy (session.ts). The classes
 * follow the +SBDIX MO status table of the ISU AT Command Reference: 0-4 sent; the others
 * failed, some for good (12, 14), some telling how long to wait (36, 38), some about the
 * account or the hardware (15, 16, 33, 34).
 */

export type MoClass = 'success' | 'retry' | 'wait' | 'account' | 'fatal' | 'hardware';

export function classifyMoStatus(code: number): { kind: MoClass; reason: string } {
  if (code >= 0 && code <= 4)
    return { kind: 'success', reason: code === 1 ? 'sent; MT message too big for the modem' : code === 2 ? 'sent; location update not accepted' : 'sent' };
  switch (code) {
    case 12:
      return { kind: 'fatal', reason: 'MO message has too many segments' };
    case 14:
      return { kind: 'fatal', reason: 'invalid segment size' };
    case 15:
      return { kind: 'account', reason: 'access is denied (account not active or out of credit)' };
    case 16:
      return { kind: 'account', reason: 'modem is locked and may not make SBD calls (+CULK)' };
    case 33:
      return { kind: 'hardware', reason: 'antenna fault' };
    case 34:
      return { kind: 'hardware', reason: 'radio is disabled (*R)' };
    case 36:
      return { kind: 'wait', reason: 'try later: must wait 3 minutes since the last registration' };
    case 38:
      return { kind: 'wait', reason: 'try later: traffic management period' };
    case 10:
      return { kind: 'retry', reason: 'call did not complete in the allowed time' };
    case 11:
      return { kind: 'retry', reason: 'MO queue at the gateway is full' };
    case 13:
      return { kind: 'retry', reason: 'gateway reported the session did not complete' };
    case 17:
      return { kind: 'retry', reason: 'gateway not responding (local session timeout)' };
    case 18:
      return { kind: 'retry', reason: 'connection lost (RF drop)' };
    case 19:
      return { kind: 'retry', reason: 'link failure (protocol error)' };
    case 32:
      return { kind: 'retry', reason: 'no network service' };
    case 35:
      return { kind: 'retry', reason: 'modem is busy' };
    case 37:
      return { kind: 'retry', reason: 'SBD service is temporarily disabled' };
    default:
      return { kind: 'retry', reason: `failure status ${code}` };
  }
}
