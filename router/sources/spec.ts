/** Building blocks shared by the sources: a blank spec and canonical flag names. */
import { lookupFlag, type OptionMap } from "../flags/flags.ts";
import type { ModelSource, ModelSpec } from "./types.ts";

/** llama.cpp's `DEFAULT_STOP_TIMEOUT`. */
export const DEFAULT_STOP_TIMEOUT_S = 10;

export function newSpec(id: string, source: ModelSource, options: OptionMap): ModelSpec {
  return {
    id,
    aliases: [],
    tags: [],
    source,
    options,
    loadOnStartup: false,
    stopTimeoutS: DEFAULT_STOP_TIMEOUT_S,
    pinned: false,
    priority: 0,
    hidden: false,
  };
}

/** A comma-separated option (`--alias a,b`, `--tags x,y`): trimmed, unique, in order. */
export function splitList(value: string | boolean | undefined): string[] {
  if (typeof value !== "string") return [];
  return [...new Set(value.split(",").map((s) => s.trim()).filter(Boolean))];
}

/**
 * The canonical (last) spelling of a llama-server flag. Spellings move between llama.cpp releases
 * (`--spec-draft-model` renders as `--model-draft`), so callers name any spelling and store this.
 */
export function canonicalFlag(spelling: string): string {
  const found = lookupFlag(spelling);
  if (!found) throw new Error(`llama-server has no option ${spelling}`);
  return found.option.flag;
}

export const FLAG = {
  model: canonicalFlag("--model"),
  mmproj: canonicalFlag("--mmproj"),
  draft: canonicalFlag("--spec-draft-model"),
  hfRepo: canonicalFlag("--hf-repo"),
  hfFile: canonicalFlag("--hf-file"),
  dockerRepo: canonicalFlag("--docker-repo"),
  alias: canonicalFlag("--alias"),
  tags: canonicalFlag("--tags"),
} as const;

/**
 * Options the router sets or withholds itself: a model never gets them from a source (llama.cpp's
 * `unset_reserved_args` plus the injected host and port). `--alias` is kept apart: it feeds aliases.
 */
export const ROUTER_OWNED_FLAGS: ReadonlySet<string> = new Set(
  [
    "--host",
    "--port",
    "--api-key",
    "--ssl-key-file",
    "--ssl-cert-file",
    "--models-dir",
    "--models-max",
    "--models-preset",
    "--models-autoload",
  ].map(canonicalFlag),
);
