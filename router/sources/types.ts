/**
 * What every model source (LLAMA_CACHE, --models-dir, --models-preset) produces: the static
 * description of a model. The scheduler owns the runtime state; a spec is only what to run.
 */
import type { OptionMap } from "../flags/flags.ts";

/** `cli`: the model of a single-model command line (`-m`, `-hf`, `-mu`) */
export type ModelSource = "cache" | "models_dir" | "preset" | "cli";

export interface ModelSpec {
  /** canonical id: `owner/repo:TAG` (cache), the file or folder name (models-dir), the section name (preset) */
  id: string;
  aliases: string[];
  tags: string[];
  source: ModelSource;
  /**
   * The model's own options, keyed by canonical llama-server flag (`--model`, `--hf-repo`, `--mmproj`,
   * `--ctx-size`...): the preset `[*]` section, under the source's generated keys, under the model's
   * section. The gateway's own CLI options are laid on top at spawn time, not here. Router-owned keys
   * (`--host`, `--port`, `--alias`, `--api-key`, `--ssl-*`, `--models-*`) never appear here.
   */
  options: OptionMap;
  /** preset-only keys */
  loadOnStartup: boolean;
  stopTimeoutS: number;
  /** preset `pin = true`: never evicted nor expired; only an explicit unload stops it */
  pinned: boolean;
  /** preset `priority = N` (default 0): lower is evicted first and queued after higher */
  priority: number;
  /** preset `ttl` in seconds (0 = never); undefined: `--models-ttl` decides */
  ttlS?: number;
  /** preset `swap-kv-cache`: keep its KV cache across stops; undefined: `--swap-kv-cache` decides */
  swapKvCache?: boolean;
  /**
   * The preset-only keys as written (`load-on-startup`, `stop-timeout`, `dedup-cache-models`), after
   * `[*]` and the section: llama.cpp shows them in `status.preset`.
   */
  presetOnly?: Map<string, string>;
  /** hidden by `dedup-cache-models`: left out of listings, still routable */
  hidden: boolean;
  /**
   * For cache models: the repo folder and the snapshot files (absolute when the cache dir is) that
   * belong to this model, for DELETE: every shard of every file with this tag, and, when this is the
   * snapshot's only model, every other file of the snapshot too (mmproj, drafts, README...).
   */
  cache?: { repoDir: string; files: string[] };
}

/** A problem in a source, with enough context to fix it. */
export class SourceError extends Error {
  constructor(message: string, readonly file?: string, readonly line?: number, readonly key?: string) {
    super(message);
    this.name = "SourceError";
  }
}

export interface SourceOptions {
  /** HF hub cache root (see `resolveCacheDir`) */
  cacheDir: string;
  modelsDir?: string;
  presetFile?: string;
  /** the model of a single-model command line; the cache is then not listed */
  defaultModel?: ModelSpec;
}

export interface Catalog {
  models: ModelSpec[];
  /** non-fatal problems (e.g. a conflicting alias dropped on reload) */
  warnings: string[];
}
