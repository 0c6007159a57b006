/**
 * The `/models` entry of one model, in llama.cpp's shape, plus Switchyard's: `error` and `progress`;
 * `pinned`, `priority`, `ttl` and `expires_at`; and `status.memory`, `status.unload_reason` and
 * `status.kv_cache` (the KV cache saved when it was last stopped, `--swap-kv-cache`).
 */
import type { ModelRecord, Scheduler } from "../scheduler/scheduler.ts";

/** What the entry reads from the table's owner besides the record. */
export type EntryContext = Pick<Scheduler, "ttlOf" | "expiresAt" | "memoryOf" | "kvCacheOf">;

export interface ModelEntry {
  id: string;
  aliases: string[];
  tags: string[];
  object: "model";
  owned_by: string;
  created: number;
  status: Record<string, unknown>;
  architecture: { input_modalities: string[]; output_modalities: string[] };
  source: string;
  can_remove: boolean;
  [key: string]: unknown;
}

export function modelEntry(
  record: ModelRecord,
  owner: EntryContext,
  now = Math.floor(Date.now() / 1000),
): ModelEntry {
  const { spec } = record;
  const status: Record<string, unknown> = { value: record.state, args: record.args };
  if (record.presetText) status.preset = record.presetText;
  // an extension: a model on its way out still shows its state (as llama.cpp's does) until its exit
  if (record.stopping) status.stopping = true;
  if (record.failed) Object.assign(status, { failed: true, exit_code: record.exitCode, error: record.error });
  const memory = owner.memoryOf(record);
  if (memory) status.memory = memory;
  // why it went, while it is gone
  if (record.unloadReason && !record.alive) status.unload_reason = record.unloadReason;
  const saved = owner.kvCacheOf(record);
  if (saved) {
    status.kv_cache = {
      tokens: saved.tokens,
      bytes: saved.bytes,
      slots: saved.slots,
      saved_at: new Date(saved.savedAt).toISOString(),
    };
  }
  // the owner's clock is on the epoch scale, so its expiry is a date
  const expires = owner.expiresAt(record);
  if (record.progress && (record.state === "loading" || record.state === "downloading")) {
    status.progress = record.progress;
  }
  const entry: ModelEntry = {
    id: spec.id,
    // llama-server's single-model listing counts the model's own name among its aliases
    aliases: spec.source === "cli" ? [...new Set([spec.id, ...spec.aliases])].sort() : spec.aliases,
    tags: spec.tags,
    object: "model",
    owned_by: "llamacpp",
    created: now,
    status,
    architecture: {
      input_modalities: spec.options.has("--mmproj") ? ["text", "image"] : ["text"],
      output_modalities: ["text"],
    },
    source: spec.source,
    can_remove: spec.source === "cache",
    pinned: spec.pinned,
    priority: spec.priority,
    ttl: owner.ttlOf(record),
    expires_at: expires === null ? null : new Date(expires).toISOString(),
  };
  // as llama.cpp: what the engine reported when it became ready is merged in, without overriding
  if (record.info && record.alive) {
    for (const [key, value] of Object.entries(record.info)) if (!(key in entry)) entry[key] = value;
  }
  return entry;
}
