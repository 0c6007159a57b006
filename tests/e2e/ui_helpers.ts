/**
 * Helpers for the web UI browser tests: a headless Chromium launcher that skips cleanly when the
 * browser is not installed, waits on the page, and where screenshots go.
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { HANG_MS } from "../helpers/wait.ts";

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
  // every wait on the page is for something that must happen: its bound only turns a hang into a failure
  context.setDefaultTimeout(HANG_MS);
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
export async function waitState(page: Page, id: string, state: string, timeout = HANG_MS): Promise<void> {
  await page.waitForFunction(
    `[...document.querySelectorAll(".model-row input")].find((i) => i.value === ${JSON.stringify(id)})
      ?.closest(".model-row")?.dataset.state === ${JSON.stringify(state)}`,
    undefined,
    { timeout },
  );
}

/**
 * Counts answers that have ended and been drawn: the conversation's aria-busy going back to "false" marks
 * an end, and the frame after it has drawn the end (the chat draws in animation frames, and asked first).
 * Counting ends, rather than looking for an answer that is not pending, cannot mistake the answer before
 * for the one just asked for, nor one not drawn yet for a finished one.
 */
const COUNT_ANSWERS = `(() => {
  if (window.__answered === undefined) {
    window.__answered = 0;
    const log = document.getElementById("messages");
    new MutationObserver(() => {
      if (log.getAttribute("aria-busy") === "false") requestAnimationFrame(() => window.__answered++);
    }).observe(log, { attributes: true, attributeFilter: ["aria-busy"] });
  }
  return window.__answered;
})()`;

/** How many answers have ended on this page so far (counting from the first call after a page load). */
export function answersEnded(page: Page): Promise<number> {
  return page.evaluate<number>(COUNT_ANSWERS);
}

/** Waits until more than `since` answers (see `answersEnded`) have ended and been drawn. */
export async function waitAnswered(page: Page, since: number, timeout = HANG_MS): Promise<void> {
  await page.waitForFunction(`window.__answered > ${since}`, undefined, { timeout });
}

/** Does `start` (a send, a retry) and waits until the answer it starts has ended and been drawn. */
export async function answer(page: Page, start: () => Promise<unknown>): Promise<void> {
  const since = await answersEnded(page);
  await start();
  await waitAnswered(page, since);
}

/**
 * Waits until no CSS transition runs (a drawer sliding in or out), rather than for the time one usually
 * takes. Asking for the animations brings styles up to date, so a transition just triggered counts.
 */
export async function transitionsDone(page: Page): Promise<void> {
  await page.waitForFunction(`!document.getAnimations().some((a) => a instanceof CSSTransition)`);
}
