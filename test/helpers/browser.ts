import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Teardown } from './teardown.js';

/** Debian's Chromium (`.ci/run` installs it); OUTPOST_CHROMIUM names another. */
export const CHROMIUM = process.env.OUTPOST_CHROMIUM ?? '/usr/bin/chromium';
/** A tap `skip` value: false when Chromium is there, else why the browser tests cannot run. */
export const chromiumSkip: string | false = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (.ci/run installs it)`;

/**
 * Headless Chromium with a fresh profile, closed and removed at teardown. `args` add
 * switches (e.g. `--host-resolver-rules` to give a proxy a real host name).
 */
export async function launchChromium(
  t: Teardown,
  options: { viewport?: { width: number; height: number }; timezoneId?: string; locale?: string; args?: string[]; ignoreHTTPSErrors?: boolean } = {},
): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'outpost-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(options.args ?? []),
    ],
    viewport: options.viewport ?? { width: 1280, height: 860 },
    ...(options.timezoneId ? { timezoneId: options.timezoneId } : {}),
    ...(options.locale ? { locale: options.locale } : {}),
    ...(options.ignoreHTTPSErrors ? { ignoreHTTPSErrors: true } : {}),
  });
  t.teardown(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  return context;
}

/** The window a fresh persistent context opened with (or a new one). */
export async function firstPage(context: BrowserContext): Promise<Page> {
  return context.pages()[0] ?? (await context.newPage());
}

/** The messages of uncaught errors in the page, collected as they happen. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

/** Fills in the dashboard's login form once it shows, submits it and waits until logged in (Log out shown). */
export async function logIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}
