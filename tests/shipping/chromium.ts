// Headless Chromium for the browser tests: Debian's, or the one QUICWIRE_CHROMIUM names.

import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

const CHROMIUM = process.env.QUICWIRE_CHROMIUM ?? '/usr/bin/chromium';
// .ci/run installs Chromium and sets QUICWIRE_REQUIRE_CHROMIUM=1, so there it cannot skip.
export const haveChromium = existsSync(CHROMIUM) || process.env.QUICWIRE_REQUIRE_CHROMIUM === '1';

/** Says once that `what` is skipped when there is no Chromium. */
export function warnIfNoChromium(what: string): void {
  if (!haveChromium) console.warn(`${what} skipped: no Chromium at ${CHROMIUM} (set QUICWIRE_CHROMIUM)`);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
