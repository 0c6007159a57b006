/**
 * llama-server's option table (generated from the pinned llama.cpp source by
 * `scripts/gen_flag_table.ts`) and the rules llama.cpp's router applies to it: how a CLI flag, a
 * preset key or an env name resolves to one option, and how options render back into an argv.
 */
import table from "./llama_flags.json" with { type: "json" };

export interface FlagDef {
  names: string[];
  negs: string[];
  env?: string;
  kind: "none" | "bool" | "value" | "pair";
}

/** One llama-server option. `flag` is its last spelling, the one llama.cpp's router renders. */
export interface LlamaOption {
  flag: string;
  /** first spelling: the router sorts rendered options by it */
  sortKey: string;
  def: FlagDef;
}

/** An option's value: a string for valued options, a boolean for switches. */
export type OptionValue = string | boolean;
/** Options keyed by canonical flag (e.g. `--ctx-size`). */
export type OptionMap = Map<string, OptionValue>;

export interface ResolvedFlag {
  option: LlamaOption;
  /** the spelling was a negative one (`--no-mmap`, `-nkvo`) */
  negated: boolean;
}

const bySpelling = new Map<string, ResolvedFlag>();
const byEnv = new Map<string, LlamaOption>();
for (const def of table as FlagDef[]) {
  const option: LlamaOption = { flag: def.names[def.names.length - 1], sortKey: def.names[0], def };
  for (const name of def.names) if (!bySpelling.has(name)) bySpelling.set(name, { option, negated: false });
  for (const name of def.negs) if (!bySpelling.has(name)) bySpelling.set(name, { option, negated: true });
  if (def.env && !byEnv.has(def.env)) byEnv.set(def.env, option);
}

/** Resolves a command-line spelling such as `-c`, `--ctx-size` or `--no-mmap`. */
export function lookupFlag(spelling: string): ResolvedFlag | undefined {
  return bySpelling.get(spelling);
}

/** Resolves an environment variable name such as `LLAMA_ARG_CTX_SIZE`. */
export function lookupEnv(name: string): LlamaOption | undefined {
  return byEnv.get(name);
}

/**
 * Resolves a preset key: a flag spelling without its dashes (`ctx-size`, `c`, `no-mmap`) or an env
 * name. Unlike llama.cpp, `LLAMA_ARG_NO_*` env spellings are inverted, as their name says.
 */
export function lookupPresetKey(key: string): ResolvedFlag | undefined {
  const env = byEnv.get(key);
  if (env) return { option: env, negated: false };
  if (key.startsWith("LLAMA_ARG_NO_")) {
    const positive = byEnv.get("LLAMA_ARG_" + key.slice("LLAMA_ARG_NO_".length));
    if (positive && positive.def.kind === "bool") return { option: positive, negated: true };
  }
  return bySpelling.get("--" + key) ?? bySpelling.get("-" + key);
}

export function lookupCanonical(flag: string): LlamaOption | undefined {
  const found = bySpelling.get(flag);
  return found && found.option.flag === flag ? found.option : undefined;
}

const TRUTHY = new Set(["on", "enabled", "true", "1"]);
const FALSEY = new Set(["off", "disabled", "false", "0"]);
export const isTruthy = (v: string): boolean => TRUTHY.has(v);
export const isFalsey = (v: string): boolean => FALSEY.has(v);

/** The value a spelling sets: a negative spelling or a falsey value turns a switch off. */
export function switchValue(resolved: ResolvedFlag, raw: string | undefined): boolean {
  const on = raw === undefined ? true : !isFalsey(raw);
  return resolved.negated ? !on : on;
}

/**
 * Renders options as llama.cpp's router does: sorted by first spelling, valued options as
 * `flag value`, switches as the positive flag, or the negative one (when it exists) for false.
 */
export function renderArgs(options: OptionMap): string[] {
  const entries = [...options].map(([flag, value]) => ({ option: lookupCanonical(flag), flag, value }));
  entries.sort((a, b) => cmp(a.option?.sortKey ?? a.flag, b.option?.sortKey ?? b.flag));
  const argv: string[] = [];
  for (const { option, flag, value } of entries) {
    if (typeof value === "string") {
      // a two-valued option is kept as "a b" (one preset or map value) and renders as two arguments
      argv.push(flag, ...(option?.def.kind === "pair" ? value.split(" ") : [value]));
    } else if (value) {
      argv.push(flag);
    } else if (option && option.def.negs.length) {
      argv.push(option.def.negs[option.def.negs.length - 1]);
    }
  }
  return argv;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
