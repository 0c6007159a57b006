/**
 * Idle TTL: a model unloads after `ttl` seconds without a request, counted from the end of the last
 * one. The TTL never stops anything itself: its timer only tells the scheduler, which asks
 * `idleVerdict` again on the table as it is when the timer fires. A request in flight or waiting at
 * that moment always wins, and a request that came and went since the timer was armed has moved
 * the expiry on (llama-swap #946: an unload decided on a stale view wedged the model).
 */

/** What the TTL needs to know of a model, read from the table at the moment of asking. */
export interface IdleFacts {
  /** seconds; 0 means never */
  readonly ttlS: number;
  /** pinned models never expire */
  readonly pinned: boolean;
  /** loaded or sleeping and not stopping: only such a model can be idle */
  readonly ready: boolean;
  readonly inflight: number;
  /** requests waiting for it (to become ready, or in the queue) */
  readonly waiting: number;
  /** clock time the last request ended; undefined before the first */
  readonly lastRequestEndedAt?: number;
  /** clock time it became ready: a model loaded ahead of any request is idle from then */
  readonly readyAt?: number;
}

/** The model's own `ttl` wins over `--models-ttl`; 0 (or anything not a positive number) is never. */
export function resolveTtlS(modelTtlS: number | undefined, defaultTtlS: number): number {
  const ttl = modelTtlS ?? defaultTtlS;
  return Number.isFinite(ttl) && ttl > 0 ? ttl : 0;
}

/**
 * When the model will have been idle for its TTL, or null when it cannot expire now: no TTL,
 * pinned, not ready, or in use. This is what `/models` shows as `expires_at`.
 */
export function expiresAt(f: IdleFacts): number | null {
  if (f.ttlS <= 0 || f.pinned || !f.ready || f.inflight > 0 || f.waiting > 0) return null;
  const since = idleSince(f);
  return since === undefined ? null : since + f.ttlS * 1000;
}

export function isExpired(f: IdleFacts, now: number): boolean {
  const at = expiresAt(f);
  return at !== null && now >= at;
}

export type IdleVerdict =
  /** idle for its whole TTL: stop it, with reason `idle` */
  | { readonly kind: "stop" }
  /** idle, not yet for long enough (a request came and went since the timer was armed) */
  | { readonly kind: "rearm"; readonly at: number }
  /** nothing to time: in use, pinned, no TTL, or not ready */
  | { readonly kind: "none" };

/** What the scheduler does when a TTL timer fires, or after any change that may move the expiry. */
export function idleVerdict(f: IdleFacts, now: number): IdleVerdict {
  const at = expiresAt(f);
  if (at === null) return { kind: "none" };
  return now >= at ? { kind: "stop" } : { kind: "rearm", at };
}

function idleSince(f: IdleFacts): number | undefined {
  // a reload after the last request restarts the idle time: the model was not idle while loading
  if (f.lastRequestEndedAt === undefined) return f.readyAt;
  if (f.readyAt === undefined) return f.lastRequestEndedAt;
  return Math.max(f.lastRequestEndedAt, f.readyAt);
}
