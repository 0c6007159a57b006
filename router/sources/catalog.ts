/**
 * The model list: every source merged as llama.cpp's `load_models` merges them.
 * 1. cache entries (`owner/repo:TAG`);
 * 2. `--models-dir` entries replace same-named ones outright;
 * 3. preset sections merge onto same-named entries, their keys winning; the source becomes `preset`;
 * 4. `[*]` lies under every entry: `[*]` < the source's generated keys < the model's section.
 *
 * Deviation: llama.cpp lets `[*]` override the generated keys (`model`, `mmproj`, `hf-repo`) of an
 * entry that also has a section, yet not of one without; here generated keys always beat `[*]`.
 */
import type { OptionMap } from "../flags/flags.ts";
import { type CachedRepo, cacheModels, resolveCachedFile, scanCacheRepos } from "./hf_cache.ts";
import { scanModelsDir } from "./models_dir.ts";
import { isSafeModelName } from "./names.ts";
import { loadPreset, type Preset, type PresetSection } from "./preset.ts";
import { DEFAULT_STOP_TIMEOUT_S, FLAG, newSpec, splitList } from "./spec.ts";
import { type Catalog, type ModelSpec, SourceError, type SourceOptions } from "./types.ts";

export { isSafeModelName };

export interface LoadMode {
  /**
   * A reload (`GET /models?reload=1`): a conflicting alias is dropped with a warning instead of
   * failing the load, as llama.cpp does, so one bad edit does not take the whole list down.
   */
  onReload?: boolean;
}

/**
 * Reads every configured source and merges them into one list, sorted by id.
 *
 * @example
 * const catalog = await loadCatalog({ cacheDir: resolveCacheDir(Deno.env.toObject()), presetFile: "presets/example.ini" });
 */
export async function loadCatalog(opts: SourceOptions, mode: LoadMode = {}): Promise<Catalog> {
  const warnings: string[] = [];
  const repos = await scanCacheRepos(opts.cacheDir);
  // single-model mode lists its model, not the cache, as llama-server does (it still resolves -hf there)
  const listed = opts.defaultModel ? [] : cacheModels(repos);
  const byId = new Map<string, ModelSpec>(listed.map((s) => [s.id, s]));
  if (opts.modelsDir) {
    const local = await scanModelsDir(opts.modelsDir);
    warnings.push(...local.warnings);
    for (const spec of local.models) byId.set(spec.id, spec);
  }
  const preset = opts.presetFile ? await loadPreset(opts.presetFile) : undefined;
  if (preset) warnings.push(...preset.warnings);
  const global = preset?.global;

  for (const spec of byId.values()) applySettings(spec, [global]);
  for (const section of preset?.sections ?? []) {
    const base = byId.get(section.name);
    const spec = newSpec(section.name, "preset", layer(global?.options, base?.options, section.options));
    if (!hasModelSource(spec.options)) {
      const message = `section [${section.name}] has no model source (set model or hf-repo)`;
      throw new SourceError(`${preset!.file}:${section.line}: ${message}`, preset!.file, section.line);
    }
    applySettings(spec, [global, section]);
    byId.set(spec.id, spec);
  }

  if (opts.defaultModel) {
    // a copy: alias assignment consumes `--alias`, and the same spec is read again on every reload
    byId.set(opts.defaultModel.id, { ...opts.defaultModel, options: new Map(opts.defaultModel.options) });
  }
  hideDeduplicated(byId, repos, preset);
  const models = [...byId.values()].sort((a, b) => cmp(a.id, b.id));
  assignAliases(models, preset, mode.onReload ?? false, warnings);
  return { models, warnings };
}

/** Resolves a model by id, then by alias. */
export function findModel(catalog: Catalog, name: string): ModelSpec | undefined {
  return catalog.models.find((m) => m.id === name) ?? catalog.models.find((m) => m.aliases.includes(name));
}

function hasModelSource(options: OptionMap): boolean {
  return [FLAG.model, FLAG.hfRepo, FLAG.dockerRepo].some((flag) => !!options.get(flag));
}

function layer(...maps: (OptionMap | undefined)[]): OptionMap {
  const out: OptionMap = new Map();
  for (const map of maps) for (const [flag, value] of map ?? []) out.set(flag, value);
  return out;
}

/** Lays `[*]` under a source entry and reads the preset-only settings, the later layer winning. */
function applySettings(spec: ModelSpec, layers: (PresetSection | undefined)[]): void {
  if (spec.source !== "preset") spec.options = layer(layers[0]?.options, spec.options);
  spec.loadOnStartup = false;
  spec.stopTimeoutS = DEFAULT_STOP_TIMEOUT_S;
  spec.pinned = false;
  spec.priority = 0;
  spec.ttlS = undefined;
  spec.swapKvCache = undefined;
  const presetOnly = new Map<string, string>();
  for (const section of layers) {
    if (!section) continue;
    spec.loadOnStartup = section.loadOnStartup ?? spec.loadOnStartup;
    spec.stopTimeoutS = section.stopTimeoutS ?? spec.stopTimeoutS;
    spec.pinned = section.pinned ?? spec.pinned;
    spec.priority = section.priority ?? spec.priority;
    spec.ttlS = section.ttlS ?? spec.ttlS;
    spec.swapKvCache = section.swapKvCache ?? spec.swapKvCache;
    for (const [key, value] of section.presetOnly) presetOnly.set(key, value);
  }
  if (presetOnly.size) spec.presetOnly = presetOnly;
  spec.tags = splitList(spec.options.get(FLAG.tags));
}

/**
 * `dedup-cache-models`: a pure cache entry (no section of its own) resolving to the same cached file
 * as a section that sets `hf-repo` and the flag (itself or through `[*]`) is hidden from listings.
 */
function hideDeduplicated(byId: Map<string, ModelSpec>, repos: CachedRepo[], preset?: Preset): void {
  const shadowed = new Set<string>();
  for (const section of preset?.sections ?? []) {
    if (!(section.dedupCacheModels ?? preset?.global?.dedupCacheModels)) continue;
    // as llama.cpp, only the preset's own keys count here, not those of a cache entry it merged onto
    const own = layer(preset?.global?.options, section.options);
    const hfRepo = own.get(FLAG.hfRepo);
    if (typeof hfRepo !== "string" || !hfRepo) continue;
    const hfFile = own.get(FLAG.hfFile);
    const path = resolveCachedFile(repos, hfRepo, typeof hfFile === "string" && hfFile ? hfFile : undefined);
    if (path) shadowed.add(path);
  }
  if (!shadowed.size) return;
  for (const spec of byId.values()) {
    if (spec.source !== "cache") continue;
    const path = resolveCachedFile(repos, spec.id);
    if (path && shadowed.has(path)) spec.hidden = true;
  }
}

/**
 * Aliases come from each model's effective `alias` option (comma-separated, trimmed) and must be
 * unique across all ids and aliases. A conflict fails a first load; on reload the alias is dropped
 * with a warning, the model earlier in id order keeping it. `--alias` then leaves the options: the
 * router gives each child its id as alias.
 */
function assignAliases(
  models: ModelSpec[],
  preset: Preset | undefined,
  onReload: boolean,
  warnings: string[],
): void {
  const ids = new Set(models.map((m) => m.id));
  const owner = new Map<string, string>();
  for (const spec of models) {
    const wanted = splitList(spec.options.get(FLAG.alias));
    spec.options.delete(FLAG.alias);
    spec.aliases = [];
    for (const alias of wanted) {
      if (alias === spec.id || spec.aliases.includes(alias)) continue;
      const line = aliasLine(preset, spec.id);
      const where = line === undefined ? "" : `${preset!.file}:${line}: `;
      if (!isSafeModelName(alias)) {
        const message = `${where}alias '${alias}' of model '${spec.id}' is not a safe model name`;
        throw new SourceError(message, preset?.file, line, "alias");
      }
      const clash = ids.has(alias)
        ? `conflicts with model name '${alias}'`
        : owner.has(alias)
        ? `conflicts with an alias of model '${owner.get(alias)}'`
        : undefined;
      if (!clash) {
        owner.set(alias, spec.id);
        spec.aliases.push(alias);
        continue;
      }
      const message = `${where}alias '${alias}' of model '${spec.id}' ${clash}`;
      if (!onReload) throw new SourceError(message, preset?.file, line, "alias");
      warnings.push(`${message}; dropped`);
    }
  }
}

function aliasLine(preset: Preset | undefined, id: string): number | undefined {
  const section = preset?.sections.find((s) => s.name === id);
  return section?.lines.get(FLAG.alias) ?? preset?.global?.lines.get(FLAG.alias);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
