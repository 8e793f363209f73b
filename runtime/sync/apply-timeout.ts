import { OutpostError } from '../../core/errors.js';
import './errors.js';

/**
 * A downlink command's outcome, or SYNC_ACK_TIMEOUT once `ms` pass: the central side gets an
 * answer in time and may retry (the command may still finish applying later).
 */
export async function appliedWithin<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OutpostError('SYNC_ACK_TIMEOUT', `downlink command not applied within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
