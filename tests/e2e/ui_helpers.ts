/**
 * Helpers for the web UI browser tests: a headless Chromium launcher that skips cleanly when the
 * browser is not installed, and where screenshots go.
 */
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Whether the Debian Chromium the UI tests drive is installed. */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

export const SKIP_MESSAGE =
  `${CHROMIUM} is missing: install it with 'apt-get install -y chromium' to run the UI tests`;

/** Starts headless Chromium with a fresh profile; `close()` also removes the profile. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = await Deno.makeTempDir({ prefix: "switchyard-ui-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** Where screenshots go (git-ignored). */
export async function artifactPath(name: string): Promise<string> {
  const dir = new URL("../artifacts/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  return dir + name;
}
