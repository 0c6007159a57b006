/**
 * Hugging Face hub caches as `llama-server -hf` and huggingface_hub leave them: `models--owner--name`
 * folders of content-addressed blobs, snapshot entries linking to them, and refs.
 */
import { createHash } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";

/** The hex SHA-256 of `data` (a string as UTF-8): a blob's name in the cache. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** `<cacheDir>/models--owner--name`. */
export function hubRepoDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, "models--" + repoId.replaceAll("/", "--"));
}

export interface HubSnapshot {
  commit: string;
  /** ref name → commit; default `{ main: commit }` */
  refs?: Record<string, string>;
}

/**
 * Writes `files` (path in the repo → content) into the repo's folder in `cacheDir` as the hub does:
 * one blob per content (equal contents share it), snapshot entries as relative symlinks to the blobs,
 * and the refs. Returns the repo folder.
 */
export async function writeHubSnapshot(
  cacheDir: string,
  repoId: string,
  files: Record<string, string | Uint8Array>,
  snapshot: HubSnapshot,
): Promise<string> {
  const repoDir = hubRepoDir(cacheDir, repoId);
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    const blob = join(repoDir, "blobs", sha256Hex(content));
    await writeFile(blob, content);
    const entry = join(repoDir, "snapshots", snapshot.commit, path);
    await mkdir(dirname(entry), { recursive: true });
    await symlink(relative(dirname(entry), blob), entry);
  }
  await mkdir(join(repoDir, "snapshots", snapshot.commit), { recursive: true });
  await mkdir(join(repoDir, "refs"), { recursive: true });
  for (const [name, target] of Object.entries(snapshot.refs ?? { main: snapshot.commit })) {
    await writeFile(join(repoDir, "refs", name), target);
  }
  return repoDir;
}
