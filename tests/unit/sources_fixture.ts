/** Fake HF hub caches and model folders for the sources tests: a few bytes stand in for a GGUF. */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeHubSnapshot } from "../helpers/hf_cache.ts";

export const COMMIT_A = "a".repeat(40);
export const COMMIT_B = "b".repeat(40);

export interface HubRepoOptions {
  commit?: string;
  /** ref name → commit; default `{ main: commit }` */
  refs?: Record<string, string>;
}

/**
 * Writes `models--owner--repo` into `cacheDir` as the hub does: content-addressed blobs, snapshot
 * entries as relative symlinks to them, and refs. Files with equal content share one blob.
 *
 * @returns the repo folder
 */
export function writeHubRepo(
  cacheDir: string,
  repoId: string,
  files: Record<string, string>,
  opts: HubRepoOptions = {},
): Promise<string> {
  return writeHubSnapshot(cacheDir, repoId, files, { commit: opts.commit ?? COMMIT_A, refs: opts.refs });
}

/** Writes plain files (a few bytes each) under `root`. */
export async function writeFiles(root: string, files: string[]): Promise<void> {
  for (const path of files) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), "GGUF" + path);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-sources-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
