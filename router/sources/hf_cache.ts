/**
 * Models in the Hugging Face hub cache (`models--owner--repo/{blobs,refs,snapshots}`), listed as
 * llama.cpp's `common_list_cached_models` does: one `owner/repo:TAG` per quant tag found in the
 * snapshot that `refs/main` (else another valid ref) points at. A cache model's only option is
 * `--hf-repo <id>`: llama-server resolves the files (shards, mmproj) from the cache itself.
 *
 * Deviation: files are visited in sorted order, so "first file wins" is deterministic; llama.cpp
 * takes them in directory order.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FLAG, newSpec } from "./spec.ts";
import { isCacheCompanion, isHfModelFile, parseGgufName } from "./gguf_name.ts";
import type { ModelSpec } from "./types.ts";

export { removeCacheModel } from "./cache_remove.ts";

/** One repo of the cache, reduced to the snapshot its ref points at. */
export interface CachedRepo {
  /** `owner/repo` */
  repoId: string;
  repoDir: string;
  commit: string;
  snapshotDir: string;
  /** the snapshot's entries (files and symlinks), relative, `/`-separated, sorted */
  files: string[];
}

const HEX40 = /^[0-9a-fA-F]{40}$/;

/**
 * llama.cpp's `is_valid_repo_id`: `[A-Za-z0-9_]` runs joined by single `/`, `.` or `-`, exactly one
 * `/`, at most 256 characters.
 */
export function isValidRepoId(repoId: string): boolean {
  return repoId.length <= 256 && /^[A-Za-z0-9_]+([/.-][A-Za-z0-9_]+)*$/.test(repoId) &&
    repoId.split("/").length === 2;
}

/** Splits `owner/repo[:tag]` at the last `:`; undefined unless the repo part has exactly one `/`. */
export function splitRepoTag(hfRepo: string): { repo: string; tag: string } | undefined {
  const parts = hfRepo.split(":");
  const repo = parts[0];
  if (repo.split("/").length !== 2) return undefined;
  return { repo, tag: parts.length > 1 ? parts[parts.length - 1] : "" };
}

/** Reads every repo of the cache; a missing cache dir is an empty cache. */
export async function scanCacheRepos(cacheDir: string): Promise<CachedRepo[]> {
  const entries = await listDir(cacheDir);
  const repos: CachedRepo[] = [];
  for (const name of entries) {
    if (!name.startsWith("models--")) continue;
    const repoId = name.slice("models--".length).replaceAll("--", "/");
    if (!isValidRepoId(repoId)) continue;
    const repoDir = join(cacheDir, name);
    if (!await isDir(join(repoDir, "snapshots"))) continue;
    const commit = await cachedRef(repoDir);
    if (!commit) continue;
    const snapshotDir = join(repoDir, "snapshots", commit);
    // A ref whose snapshot is missing is skipped, not replaced by another snapshot: llama-server
    // resolves `-hf` offline through the same ref and would find nothing there either.
    if (!await isDir(snapshotDir)) continue;
    const files = (await walk(snapshotDir, "")).sort();
    repos.push({ repoId, repoDir, commit, snapshotDir, files });
  }
  return repos;
}

/**
 * The cache models of the scanned repos, de-duplicated by id. A model owns every file with its tag
 * (all shards, and both `Foo-Q4_K_XL` and `Foo-UD-Q4_K_XL`, which collapse to one id); the only
 * model of a snapshot also owns its companions and other files, so deleting it leaves no orphans.
 * Untagged model files (`stories260K.gguf`) are never owned: nothing lists them.
 */
export function cacheModels(repos: CachedRepo[]): ModelSpec[] {
  const specs: ModelSpec[] = [];
  for (const repo of repos) {
    const byTag = new Map<string, string[]>();
    const listed = new Set<string>();
    const models = new Set<string>();
    for (const file of repo.files) {
      const name = parseGgufName(file);
      if (!name || isCacheCompanion(name.prefix)) continue;
      models.add(file);
      if (!name.tag) continue;
      byTag.set(name.tag, [...byTag.get(name.tag) ?? [], file]);
      // llama.cpp lists a tag only through its first (or only) shard
      if (name.index === 1) listed.add(name.tag);
    }
    for (const tag of listed) {
      const mine = byTag.get(tag)!;
      const owned = listed.size === 1 ? repo.files.filter((f) => !models.has(f) || mine.includes(f)) : mine;
      const id = `${repo.repoId}:${tag}`;
      const spec = newSpec(id, "cache", new Map([[FLAG.hfRepo, id]]));
      spec.cache = { repoDir: repo.repoDir, files: owned.map((f) => join(repo.snapshotDir, f)) };
      specs.push(spec);
    }
  }
  return specs;
}

/** Scans the cache and lists its models. */
export async function scanCache(cacheDir: string): Promise<ModelSpec[]> {
  return cacheModels(await scanCacheRepos(cacheDir));
}

/**
 * The snapshot path `-hf <hfRepo> [--hf-file <hfFile>]` resolves to offline, as llama.cpp's
 * `common_download_resolve_path`: an exact `hfFile` match, else the first model file matching
 * `<tag>[.-]` (case-insensitive, anywhere in the path), else, with no tag, `Q4_K_M`, `Q8_0`, then
 * the first model file. Used by `dedup-cache-models` to tell which cache entries a preset shadows.
 */
export function resolveCachedFile(repos: CachedRepo[], hfRepo: string, hfFile?: string): string | undefined {
  const split = splitRepoTag(hfRepo);
  const repo = split && repos.find((r) => r.repoId === split.repo);
  if (!split || !repo) return undefined;
  const found = hfFile ? repo.files.find((f) => f === hfFile) : bestModelFile(repo.files, split.tag);
  return found === undefined ? undefined : join(repo.snapshotDir, found);
}

/** `resolveCachedFile` over a fresh scan of `cacheDir`. */
export async function cacheFileFor(
  cacheDir: string,
  hfRepo: string,
  hfFile?: string,
): Promise<string | undefined> {
  return resolveCachedFile(await scanCacheRepos(cacheDir), hfRepo, hfFile);
}

function bestModelFile(files: string[], tag: string): string | undefined {
  const loadable = files.filter((f) => {
    const name = parseGgufName(f);
    return isHfModelFile(f) && name !== undefined && (name.count <= 1 || name.index === 1);
  });
  // llama.cpp builds the regex from the tag unescaped; we escape it, so tags are matched literally.
  for (const candidate of tag ? [tag] : ["Q4_K_M", "Q8_0"]) {
    const re = new RegExp(escapeRegExp(candidate) + "[.-]", "i");
    const match = loadable.find((f) => re.test(f));
    if (match !== undefined) return match;
  }
  return tag ? undefined : loadable[0];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** llama.cpp's `get_cached_ref`: the commit in `refs/main`, else in the first other valid ref. */
async function cachedRef(repoDir: string): Promise<string | undefined> {
  const refsDir = join(repoDir, "refs");
  let fallback: string | undefined;
  for (const name of (await listDir(refsDir)).sort()) {
    let commit: string;
    try {
      commit = (await readFile(join(refsDir, name), "utf8")).split("\n")[0];
    } catch {
      continue; // a folder (refs/pr/...) or unreadable: not a branch ref
    }
    if (!HEX40.test(commit)) continue;
    if (name === "main") return commit;
    fallback ??= commit;
  }
  return fallback;
}

/** Files and symlinks (dangling ones too) under `dir`, without following directory symlinks. */
async function walk(root: string, rel: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...await walk(root, path));
    else if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
  }
  return out;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
