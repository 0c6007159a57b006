/**
 * Preset files (`--models-preset`): INI sections turned into model options as llama.cpp's
 * `load_from_ini` does. A key is a llama-server flag without its dashes (`ctx-size`, `c`,
 * `no-mmap`), its env name (`LLAMA_ARG_CTX_SIZE`), or a preset-only key (`load-on-startup`,
 * `stop-timeout`, `dedup-cache-models`, and Switchyard's `pin`, `priority`, `ttl`, `swap-kv-cache`).
 * `[*]` is the global section.
 *
 * Deviations, all turning a silent misbehaviour into an error that names file, line and key:
 * - a switch (`mmap`, `no-mmap`, `swa-full`) takes a boolean (`true/false`, `on/off`,
 *   `enabled/disabled`, `1/0`); llama.cpp turns any other value into "on";
 * - `stop-timeout` must be a whole number of seconds (llama.cpp warns and uses 10), and
 *   `load-on-startup`/`dedup-cache-models` take booleans (llama.cpp reads anything else as false);
 *   so do `ttl` (seconds, 0 = never), `priority` (an integer), `pin` and `swap-kv-cache` (booleans);
 * - two spellings of one option in one section (`c` and `ctx-size`) are an error (llama.cpp keeps
 *   the spelling that sorts last); two-value options are refused here, not at spawn time;
 * - two headers that canonicalise to one name (`[x:q4_k_m]`, `[x:Q4_K_M]`) are an error, and so
 *   are unsafe section names (see `isSafeModelName`);
 * - router-owned keys (`host`, `port`, `api-key`, `ssl-*`, `models-*`) are dropped with a warning:
 *   llama.cpp drops or overwrites them too, silently.
 *
 * Relative paths (`model = ./x.gguf`) are kept as written and so resolve against the router's
 * working directory, not the INI file's folder: that is what llama.cpp does and documents, and a
 * preset that works with llama-server must work here unchanged.
 */
import { readFile } from "node:fs/promises";
import {
  isFalsey,
  isTruthy,
  lookupCanonical,
  lookupPresetKey,
  type OptionMap,
  type OptionValue,
  switchValue,
} from "../flags/flags.ts";
import { canonicalModelName } from "./gguf_name.ts";
import { DEFAULT_SECTION, type IniEntry, parseIni } from "./ini.ts";
import { isSafeModelName } from "./names.ts";
import { FLAG, ROUTER_OWNED_FLAGS } from "./spec.ts";
import { type ModelSpec, SourceError } from "./types.ts";

export interface PresetSection {
  /** the header, its tag canonicalised (`[x:q4_k_m]` is `x:Q4_K_M`) */
  name: string;
  /** 1-based line of the header (0 for keys before any header) */
  line: number;
  options: OptionMap;
  /** the line that set each option, by canonical flag */
  lines: Map<string, number>;
  /** preset-only keys as written, under their dashed names */
  presetOnly: Map<string, string>;
  loadOnStartup?: boolean;
  stopTimeoutS?: number;
  dedupCacheModels?: boolean;
  pinned?: boolean;
  priority?: number;
  ttlS?: number;
  swapKvCache?: boolean;
}

export interface Preset {
  file: string;
  global?: PresetSection;
  sections: PresetSection[];
  warnings: string[];
}

const PRESET_ONLY: Record<string, string> = {
  "load-on-startup": "load-on-startup",
  "__PRESET_LOAD_ON_STARTUP": "load-on-startup",
  "stop-timeout": "stop-timeout",
  "__PRESET_STOP_TIMEOUT": "stop-timeout",
  "dedup-cache-models": "dedup-cache-models",
  "__PRESET_DEDUP_CACHE_MODELS": "dedup-cache-models",
  // Switchyard's own: llama.cpp has no memory-aware scheduling (its `pin` is commented out, arg.cpp)
  "pin": "pin",
  "priority": "priority",
  "ttl": "ttl",
  "swap-kv-cache": "swap-kv-cache",
};

/** Reads and parses a preset file; a missing file is a `SourceError`. */
export async function loadPreset(file: string): Promise<Preset> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new SourceError(`cannot read preset file '${file}': ${(e as Error).message}`, file);
  }
  return parsePreset(text, file);
}

/** Parses preset text; `file` only labels errors and warnings. */
export function parsePreset(text: string, file: string): Preset {
  const preset: Preset = { file, sections: [], warnings: [] };
  const byName = new Map<string, PresetSection>();
  for (const ini of parseIni(text, file)) {
    const name = ini.name === "*" || ini.name === DEFAULT_SECTION ? ini.name : canonicalModelName(ini.name);
    const at = `${file}:${ini.line}`;
    if (name !== "*" && !isSafeModelName(name)) {
      throw new SourceError(`${at}: section [${ini.name}] is not a safe model name`, file, ini.line);
    }
    const other = byName.get(name);
    if (other) {
      throw new SourceError(
        `${at}: section [${ini.name}] is [${name}] again (first at line ${other.line})`,
        file,
        ini.line,
      );
    }
    const section = toSection(name, ini.line, ini.entries, file, preset.warnings);
    byName.set(name, section);
    // llama.cpp makes no model of a `default` section without options
    if (name === DEFAULT_SECTION && !section.options.size && !section.presetOnly.size) continue;
    if (name === "*") preset.global = section;
    else preset.sections.push(section);
  }
  return preset;
}

function toSection(
  name: string,
  line: number,
  entries: Map<string, IniEntry>,
  file: string,
  warnings: string[],
): PresetSection {
  const section: PresetSection = { name, line, options: new Map(), lines: new Map(), presetOnly: new Map() };
  const keyOf = new Map<string, string>();
  for (const [key, { value, line }] of entries) {
    const at = `${file}:${line}: key '${key}' in section [${name}]`;
    const fail = (why: string) => new SourceError(`${at} ${why}`, file, line, key);
    const presetKey = PRESET_ONLY[key];
    if (presetKey) {
      section.presetOnly.set(presetKey, value);
      readPresetOnly(section, presetKey, value, fail);
      continue;
    }

    const resolved = lookupPresetKey(key);
    if (!resolved) throw fail("is not a llama-server option");
    const flag = resolved.option.flag;
    const earlier = keyOf.get(flag);
    if (earlier !== undefined) {
      throw fail(`sets ${flag} again (already set by '${earlier}' at line ${section.lines.get(flag)})`);
    }
    let parsed: OptionValue;
    switch (resolved.option.def.kind) {
      case "none":
      case "bool":
        if (parseBool(value) === undefined) throw fail(booleanExpected(value));
        parsed = switchValue(resolved, value);
        break;
      case "pair":
        throw fail(`sets ${flag}, which takes two values: presets cannot express it`);
      default:
        parsed = value;
    }
    if (ROUTER_OWNED_FLAGS.has(flag)) {
      warnings.push(`${at} is ignored: ${flag} is set by the router`);
      continue;
    }
    keyOf.set(flag, key);
    section.options.set(flag, parsed);
    section.lines.set(flag, line);
  }
  return section;
}

/** A preset-only key's value, checked; `fail` makes the error that names file, line and key. */
function readPresetOnly(
  section: PresetSection,
  key: string,
  value: string,
  fail: (why: string) => SourceError,
): void {
  const seconds = (): number => {
    if (!/^[0-9]+$/.test(value)) throw fail(`must be a whole number of seconds, got '${value}'`);
    return Number(value);
  };
  const bool = (): boolean => {
    const on = parseBool(value);
    if (on === undefined) throw fail(booleanExpected(value));
    return on;
  };
  switch (key) {
    case "stop-timeout":
      section.stopTimeoutS = seconds();
      break;
    case "ttl":
      section.ttlS = seconds();
      break;
    case "priority":
      if (!/^-?[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw fail(`must be an integer (higher is kept longer and served first), got '${value}'`);
      }
      section.priority = Number(value);
      break;
    case "pin":
      section.pinned = bool();
      break;
    case "load-on-startup":
      section.loadOnStartup = bool();
      break;
    case "swap-kv-cache":
      section.swapKvCache = bool();
      break;
    default:
      section.dedupCacheModels = bool();
  }
}

function parseBool(value: string): boolean | undefined {
  return isTruthy(value) ? true : isFalsey(value) ? false : undefined;
}

function booleanExpected(value: string): string {
  return `takes a boolean (true/false, on/off, enabled/disabled, 1/0), got '${value}'`;
}

/** Flags left out of `status.preset`, as llama.cpp strips them before `to_ini()`. */
const HIDDEN_IN_STATUS = new Set([...ROUTER_OWNED_FLAGS, FLAG.alias, FLAG.tags]);

/**
 * The `status.preset` text llama.cpp shows for a model: `[id]` then `key = value` lines (key: the
 * flag's last spelling without dashes) in the order of each option's first spelling, preset-only
 * keys last, then a blank line. `cliOptions` are the router's own options, which llama.cpp merges
 * on top of every model before showing it.
 *
 * @example
 * renderPresetText(spec); // "[ggml-org/x-GGUF:Q4_K_M]\nhf-repo = ggml-org/x-GGUF:Q4_K_M\n\n"
 */
export function renderPresetText(spec: ModelSpec, cliOptions?: OptionMap): string {
  const merged = new Map([...spec.options, ...cliOptions ?? []]);
  const rows = [...merged]
    .filter(([flag]) => !HIDDEN_IN_STATUS.has(flag))
    .map(([flag, value]) => ({ sortKey: lookupCanonical(flag)?.sortKey ?? flag, flag, value: String(value) }))
    .sort((a, b) => cmp(a.sortKey, b.sortKey))
    .map(({ flag, value }) => [flag.replace(/^-+/, ""), value]);
  const presetOnly = [...spec.presetOnly ?? []].sort((a, b) => cmp(a[0], b[0]));
  const lines = [...rows, ...presetOnly].map(([key, value]) =>
    `${key} = ${value.replaceAll("\n", "\\\n")}\n`
  );
  return `[${spec.id}]\n${lines.join("")}\n`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
