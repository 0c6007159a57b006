/**
 * The model table as each policy sees it: pure mappings from records to the policies' inputs, so the
 * policies never read a record and the scheduler never hands them a stale copy (it asks each time).
 */
import type { AdmissionRequest, Claim } from "./policies/admission.ts";
import type { DeviceBytes, DeviceId } from "./policies/device_bytes.ts";
import type { ModelFacts } from "./policies/eviction.ts";
import type { IdleFacts } from "./policies/ttl.ts";
import type { ModelRecord } from "./record.ts";

export interface AdmissionLimits {
  budgets: DeviceBytes;
  modelsMax: number;
  serialisedDevices: readonly DeviceId[];
  /** live free memory, while it is worth believing (see Scheduler's settling after an exit) */
  liveFree?: DeviceBytes;
}

/** May `record` start, given every live process's claim? */
export function admissionRequest(
  record: ModelRecord,
  records: Iterable<ModelRecord>,
  limits: AdmissionLimits,
): AdmissionRequest {
  const claims: Claim[] = [];
  for (const r of records) {
    if (!r.alive) continue;
    const phase = r.stopping ? "stopping" : r.state === "loading" ? "loading" : "running";
    claims.push({ modelId: r.id, phase, bytes: r.claim, pinned: r.spec.pinned });
  }
  return { modelId: record.id, need: record.projection?.bytes ?? {}, claims, ...limits };
}

/** Every live process, for choosing victims; `awaited`: the models queued requests wait for. */
export function evictionFacts(
  records: Iterable<ModelRecord>,
  awaited: ReadonlySet<ModelRecord>,
): ModelFacts[] {
  const facts: ModelFacts[] = [];
  for (const r of records) {
    if (!r.alive) continue;
    facts.push({
      modelId: r.id,
      phase: r.stopping ? "stopping" : r.state === "sleeping" ? "sleeping" : r.ready ? "loaded" : "loading",
      pinned: r.spec.pinned,
      priority: r.spec.priority,
      lastUsed: r.lastUsed,
      inflight: r.inflight,
      waiting: r.waiting,
      awaited: awaited.has(r),
      claim: r.claim,
    });
  }
  return facts;
}

/** What the idle TTL needs; `queued`: a queued request waits for this model. */
export function idleFacts(record: ModelRecord, ttlS: number, queued: boolean): IdleFacts {
  return {
    ttlS,
    pinned: record.spec.pinned,
    ready: record.ready,
    inflight: record.inflight,
    waiting: record.waiting + (queued ? 1 : 0),
    lastRequestEndedAt: record.lastRequestEndedAt,
    readyAt: record.readyAt,
  };
}
