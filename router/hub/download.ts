/**
 * A resolved plan into the HF cache, all or nothing, and the gateway's view of downloads in flight.
 *
 * We own the transfer instead of using @huggingface/hub's downloadFileToCacheDir: that one neither
 * resumes, verifies nor reports progress, does not write refs/main, and files the snapshot under the
 * file's last commit rather than the revision's, where llama.cpp would not look.
 */
import { dirname, join } from "node:path";
import { claimBlobs, hasClaimsUnder, isClaimed, withBlobLock } from "./blob_registry.ts";
import { fileSize, linkSnapshot, removeEmptyDirs, repoCache, writeRef } from "./cache_layout.ts";
import { DownloadCancelledError } from "./errors.ts";
import type { HubOptions } from "./options.ts";
import { type DownloadProgress, ProgressReporter } from "./progress.ts";
import { type HubFile, type HubPlan, resolveHubFiles } from "./resolve.ts";
import { transferBlob } from "./transfer.ts";

export type { DownloadProgress } from "./progress.ts";

export interface DownloadOptions extends HubOptions {
  signal?: AbortSignal;
  /** cumulative, at most every 100 ms, plus a last one when the download ends either way */
  onProgress?: (p: DownloadProgress) => void;
  /** further attempts per file after a dropped connection or a 5xx (default 3) */
  retries?: number;
  /** first backoff, doubling per retry (default 2000 ms, as llama.cpp) */
  retryDelayMs?: number;
}

export interface DownloadedFile {
  path: string;
  role: HubFile["role"];
  size: number;
  blob: string;
  /** `snapshots/<commit>/<path>`: the path to hand llama-server */
  snapshot: string;
  /** false when the blob was already in the cache */
  fetched: boolean;
}

export interface DownloadResult {
  repo: string;
  commit: string;
  tag: string;
  /**
   * the id llama.cpp's cache listing gives this model, `repo:TAG`; a file name without a tag gives
   * just `repo`, and llama.cpp leaves such files out of its listing altogether
   */
  id: string;
  modelPath: string;
  mmprojPath?: string;
  files: DownloadedFile[];
}

/**
 * Downloads every file of `plan`, then links the snapshot and writes the ref. On failure or abort it
 * removes what it added (temp files, blobs no other download wants, links), so the cache is as before.
 *
 * @example
 * const plan = await resolveHubFiles({ repo, tag }, opts);
 * const { modelPath } = await downloadModel(plan, { ...opts, onProgress: (p) => sse.send(p) });
 */
export async function downloadModel(plan: HubPlan, opts: DownloadOptions): Promise<DownloadResult> {
  const cache = repoCache(opts.cacheDir, plan.repo);
  const reporter = new ProgressReporter(opts.onProgress);
  const blobs = plan.files.map((f) => cache.blob(f.oid));
  const release = claimBlobs(blobs);
  const written: string[] = [];
  const linked: string[] = [];
  try {
    const present = await Promise.all(plan.files.map(async (f, i) => (await fileSize(blobs[i])) === f.size));
    plan.files.forEach((f, i) => reporter.set(f.url, present[i] ? f.size : 0, f.size));
    await Deno.mkdir(cache.blobsDir, { recursive: true });
    for (const [i, file] of plan.files.entries()) {
      const blob = blobs[i];
      const fetched = await withBlobLock(blob, opts.signal, async () => {
        if ((await fileSize(blob)) === file.size) return false;
        await transferBlob({ ...file, repo: plan.repo }, cache.temp(file.oid), blob, {
          token: opts.token,
          fetch: opts.fetch,
          signal: opts.signal,
          retries: opts.retries ?? 3,
          retryDelayMs: opts.retryDelayMs ?? 2000,
          onBytes: (done) => reporter.set(file.url, done, file.size),
        });
        return true;
      });
      if (fetched) written.push(blob);
      reporter.set(file.url, file.size, file.size);
    }
    opts.signal?.throwIfAborted();

    const files: DownloadedFile[] = [];
    for (const [i, file] of plan.files.entries()) {
      const snapshot = cache.snapshot(plan.commit, file.path);
      if (await linkSnapshot(blobs[i], snapshot)) linked.push(snapshot);
      const { path, role, size } = file;
      files.push({ path, role, size, blob: blobs[i], snapshot, fetched: written.includes(blobs[i]) });
    }
    // Last, because llama.cpp lists a repo by the commit in refs/main: the model appears complete or not at all.
    await writeRef(cache.ref(plan.revision), plan.commit);
    return {
      repo: plan.repo,
      commit: plan.commit,
      tag: plan.tag,
      id: plan.tag ? `${plan.repo}:${plan.tag}` : plan.repo,
      modelPath: files[0].snapshot,
      ...(plan.mmproj ? { mmprojPath: cache.snapshot(plan.commit, plan.mmproj.path) } : {}),
      files,
    };
  } catch (err) {
    release();
    const snapshots = plan.files.map((f) => cache.snapshot(plan.commit, f.path));
    await rollback(cache.repoDir, snapshots, written, linked);
    throw err;
  } finally {
    release();
    reporter.close();
  }
}

async function rollback(
  repoDir: string,
  snapshots: string[],
  written: string[],
  linked: string[],
): Promise<void> {
  for (const link of linked) await Deno.remove(link).catch(() => {});
  for (const blob of written) if (!isClaimed(blob)) await Deno.remove(blob).catch(() => {});
  if (hasClaimsUnder(repoDir)) return;
  const snapshotsDir = join(repoDir, "snapshots");
  const dirs = new Set<string>();
  for (const s of snapshots) for (let d = dirname(s); d.startsWith(snapshotsDir); d = dirname(d)) dirs.add(d);
  const deepestFirst = [...dirs].sort((a, b) => b.length - a.length);
  await removeEmptyDirs([...deepestFirst, join(repoDir, "blobs"), join(repoDir, "refs"), repoDir]);
}

export interface ActiveDownload {
  key: string;
  repo: string;
  tag?: string;
  startedAt: number;
  progress: DownloadProgress;
}

export interface DownloadManagerOptions extends Omit<DownloadOptions, "signal" | "onProgress"> {
  /** every progress report of every download, tagged with its key */
  onProgress?: (key: string, p: DownloadProgress) => void;
}

interface JobState extends ActiveDownload {
  controller: AbortController;
}

interface Job extends JobState {
  promise: Promise<DownloadResult>;
}

/**
 * The gateway's single owner of downloads: a second request for a model being downloaded joins the
 * first, and a cancel reaches every waiter.
 *
 * @example
 * const downloads = new DownloadManager(hubOptionsFromEnv(Deno.env.toObject(), cacheDir));
 * const result = await downloads.start("ggml-org/gemma-3-1b-it-GGUF", "Q4_K_M");
 * downloads.cancel(DownloadManager.key("ggml-org/gemma-3-1b-it-GGUF", "Q4_K_M"));
 */
export class DownloadManager {
  readonly #opts: DownloadManagerOptions;
  readonly #jobs = new Map<string, Job>();

  constructor(opts: DownloadManagerOptions) {
    this.#opts = opts;
  }

  /** The name llama.cpp gives the download entry: the request as written, `repo` or `repo:tag`. */
  static key(repo: string, tag?: string): string {
    return tag ? `${repo}:${tag}` : repo;
  }

  /** Resolves and downloads; callers of the same key get the same promise until it settles. */
  start(repo: string, tag?: string): Promise<DownloadResult> {
    const key = DownloadManager.key(repo, tag);
    const running = this.#jobs.get(key);
    if (running && !running.controller.signal.aborted) return running.promise;
    const state: JobState = {
      key,
      repo,
      ...(tag ? { tag } : {}),
      startedAt: Date.now(),
      progress: { files: {} },
      controller: new AbortController(),
    };
    // #run settles no earlier than a microtask from now, so the job is in the map before it leaves
    const job: Job = Object.assign(state, { promise: this.#run(state) });
    this.#jobs.set(key, job);
    return job.promise;
  }

  /** Aborts the download; its promise rejects with DownloadCancelledError. False if none is running. */
  cancel(key: string): boolean {
    const job = this.#jobs.get(key);
    if (!job || job.controller.signal.aborted) return false;
    job.controller.abort(new DownloadCancelledError(key));
    return true;
  }

  active(): ActiveDownload[] {
    return [...this.#jobs.values()].map(({ key, repo, tag, startedAt, progress }) => ({
      key,
      repo,
      ...(tag ? { tag } : {}),
      startedAt,
      progress,
    }));
  }

  async #run(job: JobState): Promise<DownloadResult> {
    const signal = job.controller.signal;
    try {
      const plan = await resolveHubFiles({ repo: job.repo, tag: job.tag }, { ...this.#opts, signal });
      return await downloadModel(plan, {
        ...this.#opts,
        signal,
        onProgress: (p) => {
          job.progress = p;
          this.#opts.onProgress?.(job.key, p);
        },
      });
    } finally {
      if (this.#jobs.get(job.key) === job) this.#jobs.delete(job.key);
    }
  }
}
