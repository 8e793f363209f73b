import { formatOcppTime } from '../codec.js';
import type { ActionHandler } from './types.js';

/** Heartbeat (OCPP 1.6 §4.6): the answer carries our clock, which chargers use to set theirs. */
export const heartbeat: ActionHandler = (central) => ({ currentTime: formatOcppTime(central.ctx.clock.now()) });
