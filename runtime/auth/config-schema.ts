import { z } from 'zod';
import { proxyEntryProblem } from '../http/forwarded.js';
import { isPasswordHash } from './passwords.js';

/**
 * The login settings the gateway's `auth:` and Outpost Central's `auth:` share (same keys,
 * same defaults): the first admin, sessions, login throttles. Each config adds its own keys.
 */
export const authCommonShape = {
  /** The first admin, created at the first start when there are no users (a generated password is printed once). */
  admin: z
    .strictObject({
      username: z
        .string()
        .regex(/^[a-z0-9][a-z0-9_.@-]{0,63}$/, 'expected lower-case letters, digits, . _ @ -')
        .default('admin'),
      password: z.string().min(10, 'expected at least 10 characters').max(256).optional(),
      passwordHash: z.string().refine(isPasswordHash, 'expected a hash made by `outpost hash-password` (scrypt$...)').optional(),
    })
    .prefault({}),
  session: z
    .strictObject({
      idleMinutes: z
        .number()
        .int()
        .min(1)
        .max(7 * 24 * 60)
        .default(480),
      maxHours: z
        .number()
        .int()
        .min(1)
        .max(24 * 90)
        .default(168),
      maxSessions: z.number().int().min(1).max(100_000).default(1000),
    })
    .prefault({}),
  login: z
    .strictObject({
      maxFailures: z.number().int().min(1).max(1000).default(5),
      maxFailuresPerAddress: z.number().int().min(1).max(100_000).default(20),
      maxFailuresPerUser: z.number().int().min(1).max(1_000_000).default(100),
      windowSeconds: z.number().int().min(1).max(86_400).default(900),
    })
    .prefault({}),
};

/** `http.trustedProxies`: the proxies whose X-Forwarded-* headers say who the client is (runtime/http/forwarded.ts). */
export const trustedProxiesSchema = z
  .array(
    z.string().superRefine((entry, ctx) => {
      const problem = proxyEntryProblem(entry);
      if (problem) ctx.addIssue({ code: 'custom', message: `"${entry}" ${problem}` });
    }),
  )
  .max(64)
  .default([]);
