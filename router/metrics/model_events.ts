/**
 * Loads and unloads, counted from the scheduler's own events (`/models/sse`'s feed): a load starts
 * at `model_status: loading` (the model was admitted) and ends at the next `loaded` (success) or
 * `unloaded` (failure or cancelled); every `unloaded` is an engine exit, with the reason the
 * scheduler fixed for it. Events are published at the moment of the transition, so their arrival
 * time is the transition's.
 */
import type { EventBus, ModelEvent } from "../scheduler/events.ts";
import type { LoadResult } from "./families.ts";

/** What the watcher reports to (GatewayMetrics). */
export interface LoadSink {
  loadEnded(model: string, result: LoadResult, seconds?: number): void;
  unloaded(model: string, reason: string): void;
}

/**
 * How a load that ended in an exit before readiness counts: a failure when the engine failed or ran
 * out of memory (even if the scheduler retries it), cancelled when it was stopped on purpose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(loadOutcome({ status: "unloaded", reason: "memory" }), "failure");
 * assert.deepEqual(loadOutcome({ status: "unloaded", reason: "requested" }), "cancelled");
 * ```
 */
export function loadOutcome(data: Record<string, unknown>): Exclude<LoadResult, "success"> {
  return data.failed === true || data.reason === "crashed" || data.reason === "memory"
    ? "failure"
    : "cancelled";
}

/** Subscribes `sink` to the model events; returns the unsubscribe. `now` is in ms (monotonic). */
export function watchLoads(
  events: EventBus,
  sink: LoadSink,
  now: () => number = () => performance.now(),
): () => void {
  const loadingSince = new Map<string, number>();
  return events.subscribe((event: ModelEvent) => {
    const status = event.data?.status;
    if (event.event === "model_status" && status === "loading") {
      loadingSince.set(event.model, now());
      return;
    }
    if (event.event !== "status_change" || (status !== "loaded" && status !== "unloaded")) return;
    const since = loadingSince.get(event.model);
    loadingSince.delete(event.model);
    if (status === "loaded") {
      // a sleeping engine that wakes is `loaded` again without a load
      if (since !== undefined) sink.loadEnded(event.model, "success", (now() - since) / 1000);
      return;
    }
    if (since !== undefined) sink.loadEnded(event.model, loadOutcome(event.data!));
    sink.unloaded(event.model, typeof event.data?.reason === "string" ? event.data.reason : "unknown");
  });
}
