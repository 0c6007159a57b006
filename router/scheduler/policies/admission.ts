/**
 * Admission by memory: may a model start now, and if not, what stands in the way? Decided on claims
 * (what each live process was booked for), not on live free memory alone: a process that is still
 * loading has not allocated yet, and one that is stopping still holds its memory until its exit has
 * been observed. Live free memory, where an engine reports it, can only delay an admission.
 *
 * With no projection and no budgets the rule is llama.cpp's count rule (`--models-max`) alone, so
 * the scheduler can adopt this policy before any memory is known.
 */
import {
  type DeviceBytes,
  type DeviceId,
  devicesOf,
  formatBytes,
  onDevices,
  sumBytes,
} from "./device_bytes.ts";

/**
 * How far a live process has come. `running` covers loaded and sleeping: a sleeping engine still
 * holds its process and, for admission, its claim.
 */
export type ClaimPhase = "loading" | "running" | "stopping";

/** One live process's booking; held from spawn until its exit has been observed. */
export interface Claim {
  readonly modelId: string;
  readonly phase: ClaimPhase;
  readonly bytes: DeviceBytes;
  readonly pinned: boolean;
}

export interface AdmissionRequest {
  readonly modelId: string;
  /** the newcomer's projection per device */
  readonly need: DeviceBytes;
  /** every live process: loading, running (loaded or sleeping) or stopping */
  readonly claims: readonly Claim[];
  /** per device, what models may claim in all (total less the reserve) */
  readonly budgets: DeviceBytes;
  /** `--models-max`: live processes at most; 0 means no cap */
  readonly modelsMax: number;
  /**
   * Devices on which a load must not overlap another: where the engine fits itself against the
   * device's live free memory (CUDA, ROCm, Vulkan), two loads would both count the same bytes.
   */
  readonly serialisedDevices: readonly DeviceId[];
  /**
   * Live free memory per device, for the devices that report it and only while it is worth
   * believing: after an exit the driver gives memory back late, so the caller passes it during a
   * bounded wait and omits it afterwards, falling back on claims.
   */
  readonly liveFree?: DeviceBytes;
}

export type WaitCause =
  /** stopping processes will free what is missing once they have exited */
  | "exit"
  /** another load on a device this one needs has not finished */
  | "load"
  /** claims say it fits, the device does not show the memory free yet */
  | "memory";

export type AdmissionDecision =
  | { readonly kind: "admit" }
  | {
    readonly kind: "wait";
    readonly cause: WaitCause;
    readonly models: readonly string[];
    readonly devices: readonly DeviceId[];
    readonly message: string;
  }
  | {
    readonly kind: "evict";
    /** per device, what idle models must free beyond what stopping ones already will */
    readonly shortBy: DeviceBytes;
    /** places under `--models-max` to free beyond the stopping processes */
    readonly slots: number;
    readonly message: string;
  }
  | { readonly kind: "never-fits"; readonly devices: readonly DeviceId[]; readonly message: string };

/**
 * Decides on the table as it is now; the caller acts on the decision at once and asks again after
 * the next change rather than keeping it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { admit } from "./admission.ts";
 * const GiB = 2 ** 30;
 * const decision = admit({
 *   modelId: "big",
 *   need: { CUDA0: 20 * GiB },
 *   claims: [],
 *   budgets: { CUDA0: 15 * GiB },
 *   modelsMax: 4,
 *   serialisedDevices: ["CUDA0"],
 * });
 * assert.equal(decision.kind, "never-fits");
 * ```
 */
export function admit(req: AdmissionRequest): AdmissionDecision {
  return neverFits(req) ?? shortage(req) ?? loadInProgress(req) ?? memoryNotBack(req) ?? { kind: "admit" };
}

/** Bigger than a budget, or than what pinned models leave of it: no waiting or eviction helps. */
function neverFits(req: AdmissionRequest): AdmissionDecision | undefined {
  // a pinned model being unloaded gives its memory back: it does not block for good
  const pins = req.claims.filter((c) => c.pinned && c.phase !== "stopping");
  const problems: string[] = [];
  const devices: DeviceId[] = [];
  for (const device of devicesOf(req.need)) {
    const need = req.need[device];
    const budget = req.budgets[device];
    const needs = `it needs ${formatBytes(need)} on ${device}`;
    if (budget === undefined) {
      problems.push(`${needs}, a device with no memory budget`);
    } else if (need > budget) {
      problems.push(`${needs}, more than that device's budget of ${formatBytes(budget)}`);
    } else {
      const holders = pins.filter((c) => onDevices(c.bytes, [device]) > 0);
      const pinned = sumBytes(holders.map((c) => c.bytes))[device] ?? 0;
      if (need <= budget - pinned) continue;
      const named = holders.map((c) => `${c.modelId} (${formatBytes(c.bytes[device])})`).join(", ");
      problems.push(
        `${needs}, but of that device's budget of ${formatBytes(budget)} the pinned ` +
          `${holders.length === 1 ? "model" : "models"} ${named} hold ${formatBytes(pinned)}, ` +
          `leaving ${formatBytes(Math.max(0, budget - pinned))}`,
      );
    }
    devices.push(device);
  }
  if (req.modelsMax > 0 && pins.length >= req.modelsMax) {
    problems.push(
      `all ${req.modelsMax} places under --models-max are held by pinned models ` +
        pins.map((c) => c.modelId).join(", "),
    );
  }
  if (problems.length === 0) return undefined;
  return {
    kind: "never-fits",
    devices,
    message: `model ${req.modelId} does not fit: ${problems.join("; ")}`,
  };
}

/** Not enough room by claims or by count: stopping processes may cover it, else idle ones must go. */
function shortage(req: AdmissionRequest): AdmissionDecision | undefined {
  const stopping = req.claims.filter((c) => c.phase === "stopping");
  const claimed = sumBytes(req.claims.map((c) => c.bytes));
  const released = sumBytes(stopping.map((c) => c.bytes));
  const short: Record<DeviceId, number> = {};
  const beyondStopping: Record<DeviceId, number> = {};
  for (const device of devicesOf(req.need)) {
    const missing = req.need[device] - ((req.budgets[device] ?? 0) - (claimed[device] ?? 0));
    if (missing <= 0) continue;
    short[device] = missing;
    const back = released[device] ?? 0;
    if (missing > back) beyondStopping[device] = missing - back;
  }
  // a stopping process gives up its place under --models-max at once (its memory stays booked until
  // it exits), so a swap starts the next engine while the last one finishes; at most --models-max
  // stopping processes overlap, so processes never exceed twice the cap
  const slots = req.modelsMax > 0 ? Math.max(0, req.claims.length - stopping.length + 1 - req.modelsMax) : 0;
  const overlapFull = req.modelsMax > 0 && req.claims.length + 1 > 2 * req.modelsMax;
  const shortDevices = Object.keys(short).sort();
  if (shortDevices.length === 0 && slots === 0 && !overlapFull) return undefined;

  if (Object.keys(beyondStopping).length > 0 || slots > 0) {
    return {
      kind: "evict",
      shortBy: beyondStopping,
      slots,
      message: evictMessage(req, beyondStopping, slots),
    };
  }
  const awaited = overlapFull ? stopping : stopping.filter((c) => onDevices(c.bytes, shortDevices) > 0);
  const models = awaited.map((c) => c.modelId);
  return {
    kind: "wait",
    cause: "exit",
    models,
    devices: shortDevices,
    message: `model ${req.modelId} waits for ${models.join(", ")} to exit`,
  };
}

function evictMessage(req: AdmissionRequest, shortBy: DeviceBytes, slots: number): string {
  const parts = devicesOf(shortBy).map((d) => `${formatBytes(shortBy[d])} on ${d}`);
  if (slots > 0) {
    parts.push(`${slots === 1 ? "one place" : `${slots} places`} under --models-max=${req.modelsMax}`);
  }
  return `model ${req.modelId} needs ${parts.join(" and ")} freed by idle models`;
}

/** Loads are serialised on the devices where the engine fits against live free memory. */
function loadInProgress(req: AdmissionRequest): AdmissionDecision | undefined {
  const devices = devicesOf(req.need).filter((d) => req.serialisedDevices.includes(d));
  const loading = req.claims.filter((c) => c.phase === "loading" && onDevices(c.bytes, devices) > 0);
  if (loading.length === 0) return undefined;
  const shared = devices.filter((d) => loading.some((c) => onDevices(c.bytes, [d]) > 0));
  const models = loading.map((c) => c.modelId);
  return {
    kind: "wait",
    cause: "load",
    models,
    devices: shared,
    message: `model ${req.modelId} waits for ${models.join(", ")} to finish loading on ${shared.join(", ")}`,
  };
}

function memoryNotBack(req: AdmissionRequest): AdmissionDecision | undefined {
  const live = req.liveFree;
  if (!live) return undefined;
  const devices = devicesOf(req.need).filter((d) => live[d] !== undefined && live[d] < req.need[d]);
  if (devices.length === 0) return undefined;
  const shown = devices.map((d) => `${d} shows ${formatBytes(live[d])} free of ${formatBytes(req.need[d])}`);
  return {
    kind: "wait",
    cause: "memory",
    models: [],
    devices,
    message: `model ${req.modelId} waits for memory to come back: ${shown.join(", ")}`,
  };
}
