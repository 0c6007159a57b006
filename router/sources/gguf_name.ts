/**
 * What llama.cpp reads from a GGUF file name: the shard suffix, the quant tag, and whether the
 * file is a companion (projector, draft head, importance matrix) rather than a model.
 */

export interface GgufName {
  /** the path without `.gguf` and without the shard suffix */
  prefix: string;
  /** uppercased quant tag, `""` when the name has none */
  tag: string;
  /** 1-based shard index (1 for an unsplit file) */
  index: number;
  /** shard count (1 for an unsplit file) */
  count: number;
}

const SHARD_RE = /^(.+)-([0-9]{5})-of-([0-9]{5})$/i;
// Unlike `\w`, this stays ASCII-only, as llama.cpp's `[A-Z0-9_]` with icase does.
const TAG_RE = /[-.]([A-Z0-9_]+)$/i;

/** Splits a `.gguf` path as llama.cpp's `get_gguf_split_info` does; undefined for other files. */
export function parseGgufName(path: string): GgufName | undefined {
  if (!path.endsWith(".gguf")) return undefined;
  let prefix = path.slice(0, -".gguf".length);
  let index = 1;
  let count = 1;
  const shard = SHARD_RE.exec(prefix);
  if (shard) {
    prefix = shard[1];
    index = Number(shard[2]);
    count = Number(shard[3]);
  }
  const tag = TAG_RE.exec(prefix)?.[1].toUpperCase() ?? "";
  return { prefix, tag, index, count };
}

/**
 * The tag of a preset section name such as `[org/x-GGUF:q4_k_m]`, canonicalised as llama.cpp's
 * `canonical_tag` does: the last `-`/`.` segment uppercased, or the whole tag uppercased.
 */
export function canonicalTag(tag: string): string {
  return (TAG_RE.exec(tag)?.[1] ?? tag).toUpperCase();
}

/** Canonicalises the part after the last `:` of a model name; names without `:` are returned as is. */
export function canonicalModelName(name: string): string {
  const colon = name.lastIndexOf(":");
  if (colon < 0) return name;
  return name.slice(0, colon + 1) + canonicalTag(name.slice(colon + 1));
}

/** Substrings that mark a cached file as a companion, never a model of its own. */
const CACHE_COMPANION_MARKS = ["mmproj", "mtp-", "eagle3-", "dflash-", "dspark-"];

/**
 * Whether a cached file is a companion. `imatrix` is our addition: llama.cpp lists an importance
 * matrix as a model (`repo:IMATRIX`), but its own `-hf` resolution refuses such files, so that id
 * could never load.
 */
export function isCacheCompanion(prefix: string): boolean {
  return CACHE_COMPANION_MARKS.some((mark) => prefix.includes(mark)) || prefix.includes("imatrix");
}

/** A file name llama.cpp's `-hf` resolution accepts as a model (checked on the file name only). */
export function isHfModelFile(path: string): boolean {
  if (!path.endsWith(".gguf")) return false;
  const name = path.slice(path.lastIndexOf("/") + 1);
  return !CACHE_COMPANION_MARKS.some((mark) => name.includes(mark)) && !name.includes("imatrix");
}

/** Prefixes of the speculative-decoding sidecars `--models-dir` picks up (llama.cpp has no eagle3 there). */
export const DRAFT_PREFIXES = ["mtp-", "dspark-", "dflash-"];

export function isDraftFileName(name: string): boolean {
  return DRAFT_PREFIXES.some((prefix) => name.startsWith(prefix));
}

export function isMmprojFileName(name: string): boolean {
  return name.includes("mmproj");
}
