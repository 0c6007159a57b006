/**
 * A saved cache's manifest (`<key>.json` in the model's folder): which slots were saved, into which
 * files, how many tokens and bytes each holds. It is written last, after every slot file is in place,
 * and read back with distrust: a file name it gives is used only if it is the name the store itself
 * would give that slot under that key, so a damaged or planted manifest cannot point a restore
 * anywhere else.
 */
import { parseStoreFile, slotFileName } from "./files.ts";

export interface SavedSlot {
  slot: number;
  /** the slot file's name in the model's folder (`slotFileName(key, slot)`) */
  file: string;
  /** tokens in the saved cache (the engine's `n_saved`) */
  tokens: number;
  /** bytes the engine wrote (`n_written`) */
  bytes: number;
  /** how long the engine took to write it (`timings.save_ms`) */
  saveMs: number;
}

export interface KvManifest {
  version: 1;
  modelId: string;
  key: string;
  /** ms since the epoch */
  savedAt: number;
  /** last saved or restored (ms since the epoch): what the LRU bound orders by */
  usedAt: number;
  slots: SavedSlot[];
}

/** The manifest's total tokens and bytes over its slots. */
export function manifestTotals(m: KvManifest): { tokens: number; bytes: number } {
  return {
    tokens: m.slots.reduce((n, s) => n + s.tokens, 0),
    bytes: m.slots.reduce((n, s) => n + s.bytes, 0),
  };
}

/**
 * Reads a manifest's text; undefined when it is not one the store wrote for `key` (malformed, another
 * key, a file name that is not the slot's own).
 *
 * @example
 * parseManifest("{}", "0123456789abcdef"); // undefined
 */
export function parseManifest(text: string, key: string): KvManifest | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(raw) || raw.version !== 1 || raw.key !== key || typeof raw.modelId !== "string") {
    return undefined;
  }
  if (!isCount(raw.savedAt) || !isCount(raw.usedAt) || !Array.isArray(raw.slots)) return undefined;
  const slots: SavedSlot[] = [];
  for (const s of raw.slots) {
    if (!isRecord(s) || !isCount(s.slot) || !isCount(s.tokens) || !isCount(s.bytes)) return undefined;
    const file = parseStoreFile(String(s.file));
    if (file?.kind !== "slot" || file.key !== key || file.slot !== s.slot) return undefined;
    if (s.file !== slotFileName(key, s.slot)) return undefined;
    if (slots.some((other) => other.slot === s.slot)) return undefined;
    slots.push({
      slot: s.slot,
      file: s.file,
      tokens: s.tokens,
      bytes: s.bytes,
      saveMs: Number(s.saveMs) || 0,
    });
  }
  return { version: 1, modelId: raw.modelId, key, savedAt: raw.savedAt, usedAt: raw.usedAt, slots };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
