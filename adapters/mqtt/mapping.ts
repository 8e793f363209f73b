import { topicMatches } from '../../runtime/topics.js';
import { DATAPOINT_ID } from '../../core/datapoint.js';

export interface Mapping {
  topic: string;
  datapoint: string;
  path?: string;
  scale: number;
}

/**
 * Builds the datapoint id for a topic: `{1}`, `{2}`… are the wildcard levels the
 * filter matched, lower-cased and with characters outside [a-z0-9_.-] replaced by `_`.
 */
export function datapointIdFor(mapping: Mapping, topic: string): string | undefined {
  const captured = topicMatches(mapping.topic, topic);
  if (!captured) return undefined;
  const id = mapping.datapoint.replace(/\{(\d+)\}/g, (_, n: string) => (captured[Number(n) - 1] ?? '').toLowerCase().replace(/[^a-z0-9_.-]/g, '_'));
  return DATAPOINT_ID.test(id) ? id : undefined;
}

/** Extracts the reading from a payload: the whole payload, or a dotted path into its JSON. */
export function extractValue(mapping: Mapping, payload: Buffer): unknown {
  const text = payload.toString('utf8').trim();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Plain-text payloads such as `ON` or `23.5` from simple devices.
    if (mapping.path) throw new Error(`payload is not JSON, cannot read "${mapping.path}"`);
    value = text;
  }
  if (mapping.path) {
    for (const part of mapping.path.split('.')) {
      if (value === null || typeof value !== 'object' || !(part in (value as object))) throw new Error(`payload has no "${mapping.path}"`);
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (typeof value === 'string') {
    const upper = value.toUpperCase();
    if (upper === 'ON' || upper === 'TRUE') return true;
    if (upper === 'OFF' || upper === 'FALSE') return false;
    if (value.trim() !== '' && Number.isFinite(Number(value))) value = Number(value);
  }
  if (typeof value === 'number' && mapping.scale !== 1) return value * mapping.scale;
  return value;
}
