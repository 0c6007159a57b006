/**
 * Helpers for the web UI browser tests: a headless Chromium launcher that skips cleanly when the
 * browser is not installed, waits on the page, and where screenshots go.
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";

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

/** True, after saying that `what` is skipped and why, when Chromium is not installed. */
export function browserMissing(what: string): boolean {
  const missing = !hasChromium();
  if (missing) console.error(`skipping ${what}: ${SKIP_MESSAGE}`);
  return missing;
}

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

// Page-side code is passed as strings: the tests are type-checked without the DOM library.

/** Waits until the model list shows model `id` in `state`. */
export async function waitState(page: Page, id: string, state: string, timeout = 60_000): Promise<void> {
  await page.waitForFunction(
    `[...document.querySelectorAll(".model-row input")].find((i) => i.value === ${JSON.stringify(id)})
      ?.closest(".model-row")?.dataset.state === ${JSON.stringify(state)}`,
    undefined,
    { timeout },
  );
}

/** Waits until the last answer has finished streaming. */
export async function waitAnswered(page: Page, timeout = 60_000): Promise<void> {
  await page.waitForFunction(
    `[...document.querySelectorAll("article.msg-assistant")].at(-1)?.classList.contains("is-pending") === false`,
    undefined,
    { timeout },
  );
}
