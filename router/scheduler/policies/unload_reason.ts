/**
 * Why a model's process went away: carried by the `unloaded` event on `/models/sse`, the log line
 * and the unload counter. The reason is fixed when the stop begins (`beginStop`), not guessed from
 * the exit afterwards; only an exit nobody asked for is named by how it ended.
 */

export type UnloadReason =
  /** `POST /models/unload`, or `DELETE /models` of a running model */
  | "requested"
  /** stopped to make room for another model: its memory on a device the newcomer needs, or its place under `--models-max` */
  | "evicted"
  /** idle for its TTL (`--models-ttl`, preset `ttl`) with no request in flight or waiting */
  | "idle"
  /** `?reload=1` (or a watched source) changed how it runs, or it left the catalog */
  | "reload"
  /** its process ended without being asked to, for a reason other than memory (any exit code) */
  | "crashed"
  /**
   * out of memory: its own load failed for want of memory, or it was idle and evicted with every
   * other idle unpinned model so that a load that ran out of memory could be retried
   */
  | "memory"
  /** the gateway is shutting down */
  | "shutdown";

export const UNLOAD_REASONS: readonly UnloadReason[] = [
  "requested",
  "evicted",
  "idle",
  "reload",
  "crashed",
  "memory",
  "shutdown",
];

/**
 * The reason for an exit: the one given when the stop was asked for, else what the exit itself
 * says (`oom`: the out-of-memory policy recognised the failure).
 */
export function exitReason(requested: UnloadReason | undefined, oom: boolean): UnloadReason {
  return requested ?? (oom ? "memory" : "crashed");
}
