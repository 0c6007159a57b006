/** Fake HF hub caches and model folders for the sources tests: a few bytes stand in for a GGUF. */
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";

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
export async function writeHubRepo(
  cacheDir: string,
  repoId: string,
  files: Record<string, string>,
  opts: HubRepoOptions = {},
): Promise<string> {
  const commit = opts.commit ?? COMMIT_A;
  const repoDir = join(cacheDir, "models--" + repoId.replaceAll("/", "--"));
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    const oid = await sha256(content);
    const blob = join(repoDir, "blobs", oid);
    await writeFile(blob, content);
    const entry = join(repoDir, "snapshots", commit, path);
    await mkdir(dirname(entry), { recursive: true });
    await symlink(relative(dirname(entry), blob), entry);
  }
  await mkdir(join(repoDir, "snapshots", commit), { recursive: true });
  await mkdir(join(repoDir, "refs"), { recursive: true });
  for (const [name, target] of Object.entries(opts.refs ?? { main: commit })) {
    await writeFile(join(repoDir, "refs", name), target);
  }
  return repoDir;
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

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
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
