/**
 * llama.cpp's "remote preset": `-hf owner/repo` where the repo's root holds `preset.ini` starts the
 * server as a router with that file as `--models-preset`. The file is kept in the HF cache layout,
 * like llama.cpp keeps it, so a later start with `--offline` finds it there.
 */
import { linkSnapshot, repoCache, writeRef } from "./cache_layout.ts";
import { ChecksumMismatchError, HubFileError } from "./errors.ts";
import { hubFetch, type HubOptions, resolveUrl } from "./options.ts";
import { listRepo } from "./resolve.ts";

const PRESET_FILE = "preset.ini";

/** The local path of the repo's `preset.ini`, downloaded unless offline; undefined when it has none. */
export async function fetchRemotePreset(
  repo: string,
  opts: HubOptions & { offline: boolean },
): Promise<string | undefined> {
  const cache = repoCache(opts.cacheDir, repo);
  if (opts.offline) {
    return await cachedPreset(cache.ref("main"), (commit) => cache.snapshot(commit, PRESET_FILE));
  }
  const { commit, listing } = await listRepo(repo, opts);
  const entry = listing.find((f) => f.path === PRESET_FILE);
  if (!entry) return undefined;
  const url = resolveUrl(opts, repo, commit, PRESET_FILE);
  const res = await hubFetch(opts)(url);
  if (!res.ok) throw new HubFileError(url, res.status);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const oid = await gitBlobSha1(bytes);
  if (oid !== entry.oid && (await sha256(bytes)) !== entry.oid) {
    throw new ChecksumMismatchError(`${repo}/${PRESET_FILE}`, entry.oid, oid);
  }
  await Deno.mkdir(cache.blobsDir, { recursive: true });
  await Deno.writeFile(cache.blob(entry.oid), bytes);
  const snapshot = cache.snapshot(commit, PRESET_FILE);
  await linkSnapshot(cache.blob(entry.oid), snapshot);
  await writeRef(cache.ref("main"), commit);
  return snapshot;
}

async function cachedPreset(
  ref: string,
  snapshotOf: (commit: string) => string,
): Promise<string | undefined> {
  try {
    const path = snapshotOf((await Deno.readTextFile(ref)).trim());
    await Deno.stat(path);
    return path;
  } catch {
    return undefined;
  }
}

/** git's object id of a file: small, non-LFS files are identified by it on the hub. */
async function gitBlobSha1(bytes: Uint8Array): Promise<string> {
  const head = new TextEncoder().encode(`blob ${bytes.length}\0`);
  const all = new Uint8Array(head.length + bytes.length);
  all.set(head);
  all.set(bytes, head.length);
  return hex(await crypto.subtle.digest("SHA-1", all));
}

async function sha256(bytes: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function hex(digest: ArrayBuffer): string {
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
