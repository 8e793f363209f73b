import { authorizeIdTag } from '../authorization.js';
import type { ActionHandler } from './types.js';

/** Authorize (OCPP 1.6 §4.1), answered from the local list so it works offline. */
export const authorize: ActionHandler<{ idTag: string }> = (central, charger, params) => {
  const idTagInfo = authorizeIdTag(central.options.idTags, params.idTag, central.ctx.clock.now());
  // id tags identify people: log the decision, not the tag.
  central.ctx.log.info({ charger: charger.identity, status: idTagInfo.status }, 'id tag authorization');
  return { idTagInfo };
};
