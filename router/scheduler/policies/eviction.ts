/**
 * Which idle models to stop so that another may start. Only idle models are candidates: a model
 * serving a request, awaited by one, loading, stopping already or pinned is never chosen. The
 * order is the policy: lower priority first, then least recently used, then the larger claim on the
 * devices that are short. The choice is pure: it must not log, because the scheduler asks it again
 * on every change of the table while a request waits, and most answers are never acted on.
 */
import {
  type DeviceBytes,
  type DeviceId,
  devicesOf,
  formatBytes,
  onDevices,
  sumBytes,
} from "./device_bytes.ts";

/** What the eviction policy needs to know of a live model. */
export interface ModelFacts {
  readonly modelId: string;
  readonly phase: "loading" | "loaded" | "sleeping" | "stopping";
  readonly pinned: boolean;
  /** preset `priority`, default 0: higher stays longer */
  readonly priority: number;
  /** clock time of the last request that touched it (or of its load) */
  readonly lastUsed: number;
  readonly inflight: number;
  /** requests waiting for it to become ready */
  readonly waiting: number;
  /** a queued request is for this model */
  readonly awaited: boolean;
  readonly claim: DeviceBytes;
}

/** Why a live model is not a candidate. */
export type KeptBecause = "pinned" | "stopping" | "loading" | "busy" | "awaited";

/** Undefined when the model is idle and may be evicted. */
export function keptBecause(m: ModelFacts): KeptBecause | undefined {
  if (m.pinned) return "pinned";
  if (m.phase === "stopping") return "stopping";
  if (m.phase === "loading") return "loading";
  if (m.inflight > 0 || m.waiting > 0) return "busy";
  if (m.awaited) return "awaited";
  return undefined;
}

/**
 * The idle models in eviction order. `devices` are those a newcomer is short on; the size
 * tie-break counts only them, or every device when none is short (the count cap alone).
 */
export function evictionCandidates(
  models: readonly ModelFacts[],
  devices: readonly DeviceId[] = [],
): ModelFacts[] {
  const size = (m: ModelFacts) => onDevices(m.claim, devices.length ? devices : devicesOf(m.claim));
  return models.filter((m) => keptBecause(m) === undefined).sort((a, b) =>
    a.priority - b.priority ||
    a.lastUsed - b.lastUsed ||
    size(b) - size(a) ||
    (a.modelId < b.modelId ? -1 : a.modelId > b.modelId ? 1 : 0)
  );
}

/** What the admission policy said must be freed. */
export interface EvictionNeed {
  /** bytes per device still missing after stopping models exit */
  readonly shortBy: DeviceBytes;
  /** places under `--models-max` still missing */
  readonly slots: number;
}

export type EvictionPlan =
  | { readonly kind: "evict"; readonly victims: readonly string[]; readonly frees: DeviceBytes }
  | {
    readonly kind: "insufficient";
    /**
     * `wait`: busy, loading or awaited models could free the rest once idle, so the request queues;
     * `never`: only pinned models hold what is missing, so it fails at once.
     */
    readonly outcome: "wait" | "never";
    /** what every candidate together would free */
    readonly freeable: DeviceBytes;
    readonly blockers: readonly { readonly modelId: string; readonly because: KeptBecause }[];
    readonly message: string;
  };

/**
 * The fewest victims, in order: the shortest prefix of the eviction order that frees enough, less
 * any member the rest of it can do without (spared from the most valued down). A prefix keeps the
 * order's promise (nothing is stopped while something ranked below it would have done); pruning
 * keeps the promise of "fewest" (a small old model is not stopped alongside the big one that alone
 * frees enough).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseVictims } from "./eviction.ts";
 * const GiB = 2 ** 30;
 * const idle = { phase: "loaded", pinned: false, priority: 0, inflight: 0, waiting: 0, awaited: false } as const;
 * const plan = chooseVictims([
 *   { ...idle, modelId: "old-small", lastUsed: 1, claim: { CUDA0: 1 * GiB } },
 *   { ...idle, modelId: "big", lastUsed: 2, claim: { CUDA0: 10 * GiB } },
 * ], { shortBy: { CUDA0: 8 * GiB }, slots: 0 });
 * assert.deepEqual(plan, { kind: "evict", victims: ["big"], frees: { CUDA0: 10 * GiB } });
 * ```
 */
export function chooseVictims(models: readonly ModelFacts[], need: EvictionNeed): EvictionPlan {
  const devices = devicesOf(need.shortBy);
  const ordered = evictionCandidates(models, devices);
  const enough = (set: readonly ModelFacts[]) => {
    const freed = sumBytes(set.map((m) => m.claim));
    return set.length >= need.slots && devices.every((d) => (freed[d] ?? 0) >= need.shortBy[d]);
  };

  let prefix = -1;
  for (let k = 0; k <= ordered.length; k++) {
    if (enough(ordered.slice(0, k))) {
      prefix = k;
      break;
    }
  }
  if (prefix < 0) return insufficient(models, ordered, need);

  let victims = ordered.slice(0, prefix);
  // the last of the prefix is needed by construction; earlier ones may be spared, most valued first
  for (let i = prefix - 2; i >= 0; i--) {
    const without = victims.filter((m) => m !== ordered[i]);
    if (enough(without)) victims = without;
  }
  return {
    kind: "evict",
    victims: victims.map((m) => m.modelId),
    frees: sumBytes(victims.map((m) => m.claim)),
  };
}

function insufficient(
  models: readonly ModelFacts[],
  candidates: readonly ModelFacts[],
  need: EvictionNeed,
): EvictionPlan {
  const blockers = models.flatMap((m) => {
    const because = keptBecause(m);
    // a stopping model's memory is already counted as coming back: it neither helps nor blocks
    return because === undefined || because === "stopping" ? [] : [{ modelId: m.modelId, because }];
  });
  const later = models.filter((m) => {
    const because = keptBecause(m);
    return because === "busy" || because === "loading" || because === "awaited";
  });
  const freeable = sumBytes(candidates.map((m) => m.claim));
  const eventually = sumBytes([...candidates, ...later].map((m) => m.claim));
  const devices = devicesOf(need.shortBy);
  const waitable = candidates.length + later.length >= need.slots &&
    devices.every((d) => (eventually[d] ?? 0) >= need.shortBy[d]);

  const missing = devices.map((d) => `${formatBytes(need.shortBy[d])} on ${d}`);
  if (need.slots > 0) {
    missing.push(`${need.slots === 1 ? "one place" : `${need.slots} places`} under --models-max`);
  }
  const held = blockers.map((b) => `${b.modelId} (${b.because})`).join(", ");
  const message = `idle models cannot free ${missing.join(" and ")}` + (held ? `; held by ${held}` : "") +
    (waitable ? "; waiting for busy models to finish" : "; only pinned models hold the rest");
  return { kind: "insufficient", outcome: waitable ? "wait" : "never", freeable, blockers, message };
}
