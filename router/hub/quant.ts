/**
 * Which files of a repo make up `owner/repo[:tag]`, decided exactly as llama.cpp's
 * common/download.cpp does (find_best_model, get_split_files, find_best_sibling), so that what we
 * download is what `llama-server -hf owner/repo:TAG --offline` later finds in the cache.
 */
import { isValidRepoId } from "../sources/hf_cache.ts";
import { type GgufName, parseGgufName } from "../sources/gguf_name.ts";
import { InvalidRepoError } from "./errors.ts";

export { isValidRepoId };
/** A hub file name read as llama.cpp reads it: the cache sources and the hub share one parser. */
export type GgufSplitInfo = GgufName;
export const ggufSplitInfo: (path: string) => GgufSplitInfo | undefined = parseGgufName;

export interface HubSpec {
  repo: string;
  tag?: string;
  /** `--hf-file`: this file of the repo, instead of the one the tag picks */
  file?: string;
}

const SIDECAR_MARKERS = ["mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-"];

/**
 * `common_download_split_repo_tag`: the tag is whatever follows the last `:`. The repo id check is
 * hf-cache's `is_valid_repo_id`, stricter than the split, because the id becomes a folder name.
 *
 * @example
 * parseHubSpec("ggml-org/gemma-3-1b-it-GGUF:Q8_0"); // { repo: "ggml-org/gemma-3-1b-it-GGUF", tag: "Q8_0" }
 */
export function parseHubSpec(name: string): HubSpec {
  const parts = name.split(":");
  const repo = parts[0];
  const tag = parts.length > 1 ? parts[parts.length - 1] : undefined;
  if (!isValidRepoId(repo)) throw new InvalidRepoError(name);
  return tag ? { repo, tag } : { repo };
}

/** A main model file: not a projector, imatrix or speculative sidecar. */
export function isModelFile(path: string): boolean {
  if (!path.endsWith(".gguf")) return false;
  const name = path.slice(path.lastIndexOf("/") + 1);
  return !SIDECAR_MARKERS.some((m) => name.includes(m));
}

function isFirstShard(path: string): boolean {
  const info = ggufSplitInfo(path);
  return info !== undefined && (info.count <= 1 || info.index === 1);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The first shard of the model to load, or undefined. Tags match case-insensitively anywhere in the
 * path followed by `.` or `-` (so `Q4_K_M` also matches `UD-Q4_K_M`), in listing order. Only without
 * a tag does it fall back to the first model file. llama.cpp inserts the tag into the regex
 * unescaped; we escape it, which only differs for tags no quant name contains.
 */
export function pickPrimary<F extends { path: string }>(files: F[], tag?: string): F | undefined {
  const candidates = files.filter((f) => isModelFile(f.path) && isFirstShard(f.path));
  for (const t of tag ? [tag] : ["Q4_K_M", "Q8_0"]) {
    const re = new RegExp(`${escapeRegExp(t)}[.-]`, "i");
    const hit = candidates.find((f) => re.test(f.path));
    if (hit) return hit;
  }
  return tag ? undefined : candidates[0];
}

/** All shards of the primary's split (same prefix and count), in shard order; just it if unsplit. */
export function shardsOf<F extends { path: string }>(files: F[], primary: F): F[] {
  const info = ggufSplitInfo(primary.path);
  if (!info || info.count <= 1) return [primary];
  const shards = files.filter((f) => {
    const s = ggufSplitInfo(f.path);
    return s !== undefined && s.count === info.count && s.prefix === info.prefix;
  });
  return shards.sort((a, b) => ggufSplitInfo(a.path)!.index - ggufSplitInfo(b.path)!.index);
}

function quantBits(path: string): number {
  const tag = ggufSplitInfo(path)?.tag ?? "";
  const digits = /[0-9]+/.exec(tag);
  return digits ? Number(digits[0]) : 0;
}

/**
 * `find_best_mmproj`: a `.gguf` with `mmproj` in its path, in the model's folder or an ancestor;
 * the deepest folder wins, then the closest quant bit-width to the model's (Q4 model → Q8_0 over F16).
 */
export function pickMmproj<F extends { path: string }>(files: F[], modelPath: string): F | undefined {
  const modelDirs = modelPath.split("/").slice(0, -1);
  const modelBits = quantBits(modelPath);
  let best: { file: F; depth: number; diff: number } | undefined;
  for (const f of files) {
    if (!f.path.endsWith(".gguf") || !f.path.includes("mmproj")) continue;
    const dirs = f.path.split("/").slice(0, -1);
    if (dirs.length > modelDirs.length || dirs.some((d, i) => d !== modelDirs[i])) continue;
    const depth = dirs.length;
    const diff = Math.abs(quantBits(f.path) - modelBits);
    if (!best || depth > best.depth || (depth === best.depth && diff < best.diff)) {
      best = { file: f, depth, diff };
    }
  }
  return best?.file;
}

/** The distinct tags of a repo's model files, for "quant not found" messages. */
export function availableQuants(paths: string[]): string[] {
  const tags = paths.filter((p) => isModelFile(p) && isFirstShard(p)).map((p) => ggufSplitInfo(p)!.tag);
  return [...new Set(tags.filter((t) => t !== ""))];
}
