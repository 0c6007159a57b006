/**
 * Pulling models from the Hugging Face Hub into the cache: `POST /models`, and a first request for an
 * `owner/repo[:quant]` that is not cached. The hub client (router/hub/) does the transfer; this module
 * keeps the model table (the scheduler) and the event feed in step with it, and rereads the cache
 * when a download lands so the model appears under its cache id.
 */
import { ApiError, badRequest, notFound, serverError, unavailable } from "../errors.ts";
import { DownloadManager, downloadModel } from "./download.ts";
import { resolveHubFiles } from "./resolve.ts";
import { cacheFileFor } from "../sources/hf_cache.ts";
import {
  ChecksumMismatchError,
  DiskFullError,
  DownloadCancelledError,
  HubAuthError,
  HubFileNotFoundError,
  HubUnavailableError,
  InvalidRepoError,
  QuantNotFoundError,
  RepoNotFoundError,
} from "./errors.ts";
import type { HubOptions } from "./options.ts";
import { parseHubSpec } from "./quant.ts";
import type { Scheduler } from "../scheduler/scheduler.ts";

export interface ModelPullerOptions {
  hub: HubOptions;
  scheduler: Scheduler;
  /** rereads every source (the cache among them) */
  reload: () => Promise<void>;
  offline: boolean;
  log: (line: string) => void;
}

export class ModelPuller {
  readonly #manager: DownloadManager;
  readonly #opts: ModelPullerOptions;
  /** downloads in progress, by the name they were asked for; resolve to the model's cache id */
  readonly #pending = new Map<string, Promise<string>>();

  constructor(opts: ModelPullerOptions) {
    this.#opts = opts;
    this.#manager = new DownloadManager({
      ...opts.hub,
      onProgress: (key, p) => opts.scheduler.updateDownload(key, p.files),
    });
  }

  /** Is `name` something the hub could serve (`owner/repo[:quant]`), and may we ask it? */
  canPull(name: string): boolean {
    if (this.#opts.offline) return false;
    try {
      parseHubSpec(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Starts downloading `owner/repo[:quant]` (joining a download already under way) and resolves with
   * the id the model has in the cache once it is there.
   */
  pull(name: string): Promise<string> {
    const pending = this.#pending.get(name);
    if (pending) return pending;
    if (this.#opts.offline) throw badRequest(`model '${name}' is not cached and --offline is set`);
    let spec;
    try {
      spec = parseHubSpec(name);
    } catch (err) {
      throw badRequest(`error: ${(err as Error).message}`);
    }
    this.#opts.scheduler.beginDownload(name);
    this.#opts.log(`downloading ${name} from ${this.#opts.hub.endpoint}`);
    const done = this.#manager.start(spec.repo, spec.tag).then(
      async (result) => {
        this.#opts.log(`downloaded ${name} as ${result.id}`);
        this.#opts.scheduler.endDownload(name);
        await this.#opts.reload();
        return result.id;
      },
      (err: Error) => {
        this.#opts.log(`download of ${name} failed: ${err.message}`);
        this.#opts.scheduler.endDownload(name, err.message);
        throw toApiError(err);
      },
    ).finally(() => this.#pending.delete(name));
    // POST /models doesn't wait, and a client may leave mid-download: a failure nobody awaits is not a crash
    done.catch(() => {});
    this.#pending.set(name, done);
    return done;
  }

  /** `POST /models/unload` on a downloading entry: cancels it and waits until it has stopped. */
  async cancel(name: string): Promise<void> {
    const pending = this.#pending.get(name);
    if (!pending) return;
    const spec = parseHubSpec(name);
    this.#manager.cancel(DownloadManager.key(spec.repo, spec.tag));
    await pending.catch(() => {});
  }
}

/**
 * The single-model command line's `-hf owner/repo[:quant]` (with `--hf-file`), made present in the cache
 * before the model loads, as llama-server downloads it at start-up; with `--offline` it must be there.
 */
export async function pullAtStartup(
  hfRepo: string,
  hfFile: string | undefined,
  opts: Pick<ModelPullerOptions, "hub" | "offline" | "log">,
): Promise<void> {
  if (await cacheFileFor(opts.hub.cacheDir, hfRepo, hfFile)) return;
  const what = `${hfRepo}${hfFile ? ` (${hfFile})` : ""}`;
  if (opts.offline) throw new Error(`-hf ${what} is not in the cache and --offline is set`);
  opts.log(`downloading ${what} from ${opts.hub.endpoint}`);
  const plan = await resolveHubFiles({ ...parseHubSpec(hfRepo), file: hfFile }, opts.hub);
  const result = await downloadModel(plan, opts.hub);
  opts.log(`downloaded ${what}: ${result.files.map((f) => f.path).join(", ")}`);
}

function toApiError(err: Error): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InvalidRepoError) return badRequest(`error: ${err.message}`);
  if (
    err instanceof RepoNotFoundError || err instanceof QuantNotFoundError ||
    err instanceof HubFileNotFoundError
  ) return notFound(err.message);
  if (err instanceof HubAuthError) return new ApiError("permission_error", err.message, 403);
  if (err instanceof HubUnavailableError) return unavailable(err.message);
  if (err instanceof DownloadCancelledError) return badRequest(`download cancelled: ${err.message}`);
  if (err instanceof ChecksumMismatchError || err instanceof DiskFullError) return serverError(err.message);
  return serverError(`download failed: ${err.message}`);
}
