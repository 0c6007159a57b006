/**
 * The HF hub cache layout, as huggingface_hub and llama.cpp (common/hf-cache.cpp) share it:
 *
 *   <cacheDir>/models--<owner>--<repo>/
 *     blobs/<oid>                     content, named by LFS sha256 (or git sha1 for small files)
 *     snapshots/<commit>/<path>       relative symlink → ../../blobs/<oid>
 *     refs/main                       the commit llama.cpp lists and loads from
 */
import { dirname, join, relative } from "node:path";

export interface RepoCache {
  repoDir: string;
  blobsDir: string;
  blob(oid: string): string;
  /** where a blob is written until it verifies; never listed by llama.cpp */
  temp(oid: string): string;
  snapshot(commit: string, path: string): string;
  ref(revision: string): string;
}

export function repoFolderName(repo: string): string {
  return `models--${repo.replaceAll("/", "--")}`;
}

export function repoCache(cacheDir: string, repo: string): RepoCache {
  const repoDir = join(cacheDir, repoFolderName(repo));
  const blobsDir = join(repoDir, "blobs");
  return {
    repoDir,
    blobsDir,
    blob: (oid) => join(blobsDir, oid),
    temp: (oid) => join(blobsDir, `${oid}.incomplete`),
    snapshot: (commit, path) => join(repoDir, "snapshots", commit, ...path.split("/")),
    ref: (revision) => join(repoDir, "refs", ...revision.split("/")),
  };
}

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Point `snapshot` at `blob` with a relative link, replacing a stale one atomically. A regular file
 * already there is left alone: llama.cpp's "degraded mode" puts copies there when it cannot symlink.
 * Where we cannot symlink either, we copy, as llama.cpp does. Returns false if it was already in place.
 */
export async function linkSnapshot(blob: string, snapshot: string): Promise<boolean> {
  const target = relative(dirname(snapshot), blob);
  try {
    const st = await Deno.lstat(snapshot);
    if (!st.isSymlink) return false;
    if ((await Deno.readLink(snapshot)) === target) return false;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dirname(snapshot), { recursive: true });
  const tmp = `${snapshot}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.symlink(target, tmp);
  } catch {
    await Deno.copyFile(blob, tmp);
  }
  try {
    await Deno.rename(tmp, snapshot);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  return true;
}

/** Written whole or not at all: a torn ref would hide the repo from llama.cpp's listing. */
export async function writeRef(refPath: string, commit: string): Promise<void> {
  await Deno.mkdir(dirname(refPath), { recursive: true });
  const tmp = `${refPath}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, commit);
    await Deno.rename(tmp, refPath);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Best-effort removal of folders a failed download created and left empty. */
export async function removeEmptyDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    try {
      await Deno.remove(dir);
    } catch {
      // not empty, or already gone: either way not ours to touch
    }
  }
}
