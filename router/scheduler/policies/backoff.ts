/**
 * Crash-restart backoff, as the scheduler has applied it so far: a model that keeps crashing is
 * restarted later and later, and after `maxCrashes` in a row only an explicit load restarts it. A
 * model that ran stably before it crashed is not in a loop: its count starts again at one.
 */

/** a model that ran this long before crashing is not in a crash loop */
export const STABLE_RUN_MS = 60_000;
export const MAX_BACKOFF_MS = 30_000;
const FIRST_BACKOFF_MS = 1000;

export interface ExitFacts {
  /** crashes in a row before this exit */
  readonly previous: number;
  /** the exit was not asked for and was not clean (see `classifyExit`) */
  readonly crashed: boolean;
  /** clock time the engine became ready, if it did */
  readonly readyAt?: number;
  readonly now: number;
}

/** Crashes in a row after this exit: 0 after a clean or requested one. */
export function crashesAfterExit(f: ExitFacts): number {
  if (!f.crashed) return 0;
  const ranStably = f.readyAt !== undefined && f.now - f.readyAt > STABLE_RUN_MS;
  return ranStably ? 1 : f.previous + 1;
}

/**
 * How long to wait before the next start: nothing after the first crash (it may have been a
 * fluke), then 1 s, 2 s, 4 s... up to 30 s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { restartDelayMs } from "./backoff.ts";
 * assert.deepEqual([1, 2, 3, 4, 9].map(restartDelayMs), [0, 1000, 2000, 4000, 30000]);
 * ```
 */
export function restartDelayMs(crashes: number): number {
  return crashes >= 2 ? Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (crashes - 2)) : 0;
}

/** Whether a request may still restart the model by itself (`maxCrashes` undefined: always). */
export function autoRestartAllowed(crashes: number, maxCrashes = Infinity): boolean {
  return crashes < maxCrashes;
}
