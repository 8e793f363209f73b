import { z } from 'zod';

/** An IANA time zone name the runtime's Intl knows (checked at config load, not at first use). */
export const timezoneSchema = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'expected an IANA time zone such as Europe/Berlin or America/Chicago');
