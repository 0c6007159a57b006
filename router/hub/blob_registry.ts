/**
 * Process-wide bookkeeping of blobs, because two downloads (say `repo:Q4_K_M` and `repo:Q8_0`) can
 * need the same blob (a shared mmproj): one writer per blob at a time, so they never interleave
 * bytes in one temp file, and no rollback deletes a blob another download is about to link.
 */
import { sep } from "node:path";
import { abortable } from "../abort.ts";

const writers = new Map<string, Promise<void>>();
const claims = new Map<string, number>();

/** Runs `fn` once no other download of this process is writing `blob`. */
export async function withBlobLock<T>(
  blob: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  for (let busy = writers.get(blob); busy; busy = writers.get(blob)) await abortable(busy, signal);
  let release!: () => void;
  writers.set(blob, new Promise<void>((r) => release = r));
  try {
    return await fn();
  } finally {
    writers.delete(blob);
    release();
  }
}

/** Marks blobs as wanted until the returned function is called. */
export function claimBlobs(blobs: string[]): () => void {
  for (const b of blobs) claims.set(b, (claims.get(b) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const b of blobs) {
      const n = (claims.get(b) ?? 1) - 1;
      if (n > 0) claims.set(b, n);
      else claims.delete(b);
    }
  };
}

export function isClaimed(blob: string): boolean {
  return claims.has(blob);
}

/** Whether any download still holds a blob under `dir` (then its folders must stay). */
export function hasClaimsUnder(dir: string): boolean {
  for (const b of claims.keys()) if (b.startsWith(dir + sep)) return true;
  return false;
}
