/**
 * Time for the scheduler, behind an interface: the real clock for the gateway, a manual one for
 * tests, so that no test of a timing rule sleeps or depends on the machine's speed.
 */

/** An armed timer; only the clock that made it can clear it. */
export interface TimerHandle {
  // `setTimeout`'s own type: a number in Deno, an object where Node's typings are loaded
  readonly timer: number | ReturnType<typeof setTimeout>;
}

export interface Clock {
  /**
   * Milliseconds, monotonic (never steps back when the wall clock is corrected), on the Unix epoch
   * scale so that a time the scheduler computes (`expires_at`) can be shown as a date.
   */
  now(): number;
  /** Runs `fn` once, `ms` from now (at the earliest); never synchronously, as `setTimeout`. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** Cancels the timer; a timer already run or cleared, or none, is ignored. */
  clearTimer(handle: TimerHandle | undefined): void;
}

/** The gateway's clock: `performance` time shifted to the epoch, and `setTimeout`. */
export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer: (ms, fn) => ({ timer: setTimeout(fn, ms) }),
  clearTimer: (handle) => {
    if (handle) clearTimeout(handle.timer);
  },
};

interface ManualTimer {
  readonly handle: TimerHandle;
  readonly due: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told. `advance(ms)` runs every timer that falls due on the way, in
 * order of due time and, at equal times, in the order they were set, with `now()` reading each
 * timer's own due time while it runs; timers that those set and that fall due within the step run
 * too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./clock.ts";
 * const clock = new ManualClock();
 * const fired: number[] = [];
 * clock.setTimer(20, () => fired.push(clock.now()));
 * clock.setTimer(10, () => fired.push(clock.now()));
 * clock.advance(30);
 * assert.deepEqual(fired, [10, 20]);
 * assert.equal(clock.now(), 30);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: ManualTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    // as setTimeout: a negative or missing delay means "as soon as possible", not "in the past"
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const handle = { timer: this.#nextId++ };
    this.#timers.push({ handle, due: this.#now + delay, fn });
    return handle;
  }

  clearTimer(handle: TimerHandle | undefined): void {
    this.#timers = this.#timers.filter((t) => t.handle !== handle);
  }

  /** Moves time forward by `ms` (0 runs what is due now), running the timers due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a clock only moves forward, not by ${ms} ms`);
    const target = this.#now + ms;
    for (;;) {
      const next = this.#earliestDue(target);
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.due;
      next.fn();
    }
    this.#now = target;
  }

  /** How many timers are armed: a test's check that nothing was left behind. */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the next timer falls due, or null when none is armed. */
  get nextDue(): number | null {
    return this.#timers.reduce<number | null>((at, t) => (at === null || t.due < at ? t.due : at), null);
  }

  #earliestDue(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) {
      // strict `<`: among timers due together, the first set stays first
      if (t.due <= limit && (!best || t.due < best.due)) best = t;
    }
    return best;
  }
}

/** Resolves after `ms` on `clock`, or rejects with the signal's reason when it aborts first. */
export function delay(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimer(handle);
      reject(signal!.reason);
    };
    const handle = clock.setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
