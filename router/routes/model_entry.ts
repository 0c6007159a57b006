/** The `/models` entry of one model, in llama.cpp's shape (plus Switchyard's `error` and `progress`). */
import type { ModelRecord } from "../scheduler/scheduler.ts";

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

export function modelEntry(record: ModelRecord, now = Math.floor(Date.now() / 1000)): ModelEntry {
  const { spec } = record;
  const status: Record<string, unknown> = { value: record.state, args: record.args };
  if (record.presetText) status.preset = record.presetText;
  if (record.failed) Object.assign(status, { failed: true, exit_code: record.exitCode, error: record.error });
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
  };
  // as llama.cpp: what the engine reported when it became ready is merged in, without overriding
  if (record.info && record.alive) {
    for (const [key, value] of Object.entries(record.info)) if (!(key in entry)) entry[key] = value;
  }
  return entry;
}
