/** Waiting in tests: a plain delay, a bounded poll, and a bound on a promise. */

/**
 * How long a test waits for something that must happen before it calls it a hang. It only turns a hang
 * into a failure, so it is generous: a slow one-core machine must never reach it. A leak or a lost event
 * stays lost, so a long bound still catches it.
 */
export const HANG_MS = 60_000;

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` every `intervalMs` until it holds; throws after `timeoutMs`, naming `what`. Returns the
 * time it took.
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 20,
): Promise<number> {
  const start = performance.now();
  while (!await check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await delay(intervalMs);
  }
  return performance.now() - start;
}

/** Settles as `p` does, or rejects naming `what` once `timeoutMs` has passed; the timer never outlives it. */
export function within<T>(p: Promise<T>, what: string, timeoutMs = HANG_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
