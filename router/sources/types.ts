/**
 * What every model source (LLAMA_CACHE, --models-dir, --models-preset) produces: the static
 * description of a model. The scheduler owns the runtime state; a spec is only what to run.
 */
import type { OptionMap } from "../flags/flags.ts";

export type ModelSource = "cache" | "models_dir" | "preset";

export interface ModelSpec {
  /** canonical id: `owner/repo:TAG` (cache), the file or folder name (models-dir), the section name (preset) */
  id: string;
  aliases: string[];
  tags: string[];
  source: ModelSource;
  /**
   * The model's own options, keyed by canonical llama-server flag (`--model`, `--hf-repo`, `--mmproj`,
   * `--ctx-size`...): the source's generated keys, under the preset `[*]` section, under the model's
   * section. The gateway's own CLI options are laid on top at spawn time, not here.
   */
  options: OptionMap;
  /** preset-only keys */
  loadOnStartup: boolean;
  stopTimeoutS: number;
  /** hidden by `dedup-cache-models`: left out of listings, still routable */
  hidden: boolean;
  /** for cache models: the repo folder and the snapshot files that belong to this model (for DELETE) */
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
}

export interface Catalog {
  models: ModelSpec[];
  /** non-fatal problems (e.g. a conflicting alias dropped on reload) */
  warnings: string[];
}
