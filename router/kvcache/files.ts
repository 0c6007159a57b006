/**
 * The names of the KV cache store's folders and files. Each model has its own folder under the store's
 * root, given to its engine as `--slot-save-path`, so an engine (and a client that reaches its
 * `/slots/{id}?action=...` through the gateway) can only ever name files of its own model: llama-server
 * refuses file names with a path separator or `..`. Inside it, every file carries the cache key:
 *
 * ```
 * <root>/<model folder>/<key>.json              the manifest: which slots, how many tokens and bytes
 * <root>/<model folder>/<key>.slot<N>.bin       slot N's saved cache, as llama-server wrote it
 * <root>/<model folder>/<key>.slot<N>.tmp-<id>  a save in progress, renamed when complete
 * <root>/<model folder>/<key>.json.tmp-<id>     a manifest being written, likewise
 * ```
 */
import { createHash } from "node:crypto";

/** A cache key: 16 hex digits of a sha256 (see key.ts). */
export const KEY_RE = /^[0-9a-f]{16}$/;

/** What a file in a model's folder is, by its name. */
export type StoreFile =
  | { kind: "manifest"; key: string }
  | { kind: "slot"; key: string; slot: number }
  /** a slot file or a manifest being written */
  | { kind: "temp"; key: string };

const FILE_RE = /^([0-9a-f]{16})\.(?:(json)|slot(\d{1,4})\.bin|(?:json|slot\d{1,4})\.tmp-[0-9a-z]{1,32})$/;
const NONCE_RE = /^[0-9a-z]{1,32}$/;
/** readable part of a model's folder name: characters every file system takes, at most this long */
const SLUG_MAX = 48;

/**
 * The folder of a model's saved caches: its id made safe as a file name, then a hash of the id, so
 * two ids that read alike once made safe (`a/b` and `a_b`) still get their own folders.
 *
 * @example
 * modelFolderName("ggml-org/tiny:Q8_0"); // "ggml-org_tiny_Q8_0-<12 hex digits>"
 */
export function modelFolderName(modelId: string): string {
  const slug = modelId.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, SLUG_MAX) || "model";
  const hash = createHash("sha256").update(modelId).digest("hex").slice(0, 12);
  return `${slug}-${hash}`;
}

/** The manifest of one cache key. */
export function manifestFileName(key: string): string {
  return `${checkedKey(key)}.json`;
}

/** Slot `slot`'s saved cache under `key`. */
export function slotFileName(key: string, slot: number): string {
  return `${checkedKey(key)}.slot${checkedSlot(slot)}.bin`;
}

/**
 * The name slot `slot` is saved under first (`nonce` tells two attempts apart): the engine writes the
 * file in place, so a save cut short must not leave a partial file under the final name.
 */
export function tempSlotFileName(key: string, slot: number, nonce: string): string {
  return `${checkedKey(key)}.slot${checkedSlot(slot)}.tmp-${checkedNonce(nonce)}`;
}

/** The name a manifest is written under before it is renamed into place. */
export function tempManifestFileName(key: string, nonce: string): string {
  return `${checkedKey(key)}.json.tmp-${checkedNonce(nonce)}`;
}

/**
 * What a file name in a model's folder stands for; undefined for any other name (the store never
 * reads, restores or counts such a file).
 *
 * @example
 * parseStoreFile("0123456789abcdef.slot2.bin"); // { kind: "slot", key: "0123456789abcdef", slot: 2 }
 * parseStoreFile("../x.bin"); // undefined
 */
export function parseStoreFile(name: string): StoreFile | undefined {
  const m = FILE_RE.exec(name);
  if (!m) return undefined;
  const [, key, json, slot] = m;
  if (json) return { kind: "manifest", key };
  if (slot !== undefined) return { kind: "slot", key, slot: Number(slot) };
  return { kind: "temp", key };
}

/** Whether `name` is a model folder's name (`modelFolderName`'s shape). */
export function isModelFolderName(name: string): boolean {
  return /^[A-Za-z0-9_-]{1,48}-[0-9a-f]{12}$/.test(name);
}

function checkedKey(key: string): string {
  if (!KEY_RE.test(key)) throw new Error(`bad KV cache key '${key}'`);
  return key;
}

function checkedNonce(nonce: string): string {
  if (!NONCE_RE.test(nonce)) throw new Error(`bad nonce '${nonce}'`);
  return nonce;
}

function checkedSlot(slot: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot > 9999) throw new Error(`bad slot id ${slot}`);
  return slot;
}
