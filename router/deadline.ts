/**
 * Aborts when the client goes away or the request outlives --timeout. Deadlines are checked by one
 * shared timer, not a timer each: a timer per request costs measurably at thousands of requests per
 * second, and an `AbortSignal.timeout` would even hold memory for the whole --timeout (an hour by
 * default), long after its request is gone. The shared timer outlives its last deadline until its
 * next tick, and stops there: started anew for each request of a steady trickle (or ref'd and unref'd
 * for each), it cost 0.05-0.3 ms on the request's path, as the first timer call after an idle moment
 * is that slow here.
 */
export class Deadline {
  static readonly #active = new Set<Deadline>();
  static #sweeper: ReturnType<typeof setInterval> | undefined;

  readonly #controller = new AbortController();
  readonly #expires: number;
  readonly #onClientGone: () => void;

  constructor(readonly client: AbortSignal, timeoutMs: number) {
    this.#expires = performance.now() + timeoutMs;
    this.#onClientGone = () => this.#controller.abort(client.reason);
    // a client gone before the request got here sends no abort event any more
    if (client.aborted) this.#controller.abort(client.reason);
    else client.addEventListener("abort", this.#onClientGone, { once: true });
    Deadline.#active.add(this);
    Deadline.#sweeper ??= setInterval(Deadline.#sweep, Math.min(SWEEP_MS, timeoutMs));
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  end(): void {
    this.client.removeEventListener("abort", this.#onClientGone);
    Deadline.#active.delete(this);
  }

  static #sweep(): void {
    if (Deadline.#active.size === 0) {
      clearInterval(Deadline.#sweeper);
      Deadline.#sweeper = undefined;
      return;
    }
    const now = performance.now();
    for (const d of Deadline.#active) {
      if (now < d.#expires) continue;
      d.#controller.abort(new DOMException("request timed out", "TimeoutError"));
      d.end();
    }
  }
}

/** How often deadlines are checked: a request may outlive --timeout by up to this much. */
const SWEEP_MS = 250;
