/**
 * Deleting a cache model (`DELETE /models`). Unlike llama.cpp, which removes every same-tag
 * snapshot entry (a same-tag mmproj other models may still use included) and leaves `refs/` and
 * emptied folders behind, we remove exactly the files the scan assigned to the model, then only what
 * that leaves orphaned: unreferenced blobs, emptied folders, refs to a snapshot that is gone.
 */
import { lstat, readdir, readFile, readlink, rm, rmdir } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { SourceError } from "./types.ts";
import type { ModelSpec } from "./types.ts";

/**
 * Deletes a cache model's snapshot files, the blobs they point at that no other snapshot entry of
 * the repo still points at, and the folders this leaves empty (snapshot folders, `snapshots/`,
 * `refs/` and `blobs/`, then the repo folder). Nothing outside the repo folder is touched.
 *
 * @returns the absolute paths removed
 */
export async function removeCacheModel(spec: ModelSpec): Promise<string[]> {
  if (!spec.cache) throw new SourceError(`model '${spec.id}' is not removable (not from cache)`);
  const repoDir = resolve(spec.cache.repoDir);
  const snapshots = join(repoDir, "snapshots");
  const blobs = join(repoDir, "blobs");
  const removed: string[] = [];
  const blobCandidates = new Set<string>();
  const parents = new Set<string>();

  for (const file of spec.cache.files.map((f) => resolve(f))) {
    if (!isInside(snapshots, file)) continue; // never delete what the scan could not have produced
    const info = await lstat(file).catch(() => undefined);
    if (!info || info.isDirectory()) continue;
    if (info.isSymbolicLink()) {
      const target = resolve(dirname(file), await readlink(file));
      if (isInside(blobs, target)) blobCandidates.add(target);
    }
    await rm(file);
    removed.push(file);
    parents.add(dirname(file));
  }

  if (blobCandidates.size) {
    const stillUsed = await symlinkTargets(snapshots);
    for (const blob of blobCandidates) {
      if (stillUsed.has(blob)) continue;
      if (await rm(blob).then(() => true, () => false)) removed.push(blob);
    }
  }

  const goneCommits = new Set<string>();
  // deepest first, so a folder is tried after its emptied subfolders
  for (const start of [...parents].sort((a, b) => b.length - a.length)) {
    for (let dir = start; isInside(snapshots, dir); dir = dirname(dir)) {
      if (!await removeIfEmpty(dir, removed)) break;
      if (dirname(dir) === snapshots) goneCommits.add(basename(dir));
    }
  }
  const refsTouched = await removeRefsTo(join(repoDir, "refs"), goneCommits, removed);

  await removeIfEmpty(snapshots, removed);
  if (refsTouched) await removeIfEmpty(join(repoDir, "refs"), removed);
  if (blobCandidates.size) await removeIfEmpty(blobs, removed);
  if (goneCommits.size) await removeIfEmpty(repoDir, removed);
  return removed;
}

/** Deletes the branch refs that point at a deleted snapshot (HF's own cache cleanup does the same). */
async function removeRefsTo(refsDir: string, commits: Set<string>, removed: string[]): Promise<boolean> {
  if (!commits.size) return false;
  let touched = false;
  for (const name of await readdir(refsDir).catch(() => [] as string[])) {
    const ref = join(refsDir, name);
    const commit = await readFile(ref, "utf8").then((t) => t.split("\n")[0], () => undefined);
    if (commit === undefined || !commits.has(commit)) continue;
    await rm(ref);
    removed.push(ref);
    touched = true;
  }
  return touched;
}

async function symlinkTargets(dir: string): Promise<Set<string>> {
  const targets = new Set<string>();
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      for (const t of await symlinkTargets(path)) targets.add(t);
    } else if (entry.isSymbolicLink()) {
      targets.add(resolve(dir, await readlink(path)));
    }
  }
  return targets;
}

async function removeIfEmpty(dir: string, removed: string[]): Promise<boolean> {
  try {
    await rmdir(dir);
  } catch {
    return false; // not empty, or already gone
  }
  removed.push(dir);
  return true;
}

function isInside(parent: string, path: string): boolean {
  const rel = relative(parent, path);
  return rel !== "" && !isAbsolute(rel) && rel.split(sep)[0] !== "..";
}
