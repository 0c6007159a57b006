/**
 * Ollama's request `options` and `keep_alive`, checked as Ollama checks them (`api.Options.FromMap`,
 * `api.Duration`) and mapped onto llama.cpp's request parameters. Sampling options go to the engine
 * with each request. Load-time options (`num_gpu`, `num_thread`...) belong to how the model was
 * started, its preset and the gateway's flags, so they are checked and otherwise left alone, as
 * Ollama leaves options it does not know; `num_ctx` is the one a client relies on, so it must fit
 * the context the model runs with (`checkNumCtx`).
 */
import { badRequest } from "../errors.ts";
import type { OptionMap } from "../flags/flags.ts";
import { canonicalFlag } from "../sources/spec.ts";

type OptionKind = "integer" | "float32" | "boolean" | "array";

/** Sampling options: Ollama's name → llama.cpp's parameter (one name on every engine route). */
const SAMPLING: Readonly<Record<string, { kind: OptionKind; param: string }>> = {
  num_predict: { kind: "integer", param: "n_predict" },
  num_keep: { kind: "integer", param: "n_keep" },
  seed: { kind: "integer", param: "seed" },
  temperature: { kind: "float32", param: "temperature" },
  top_k: { kind: "integer", param: "top_k" },
  top_p: { kind: "float32", param: "top_p" },
  min_p: { kind: "float32", param: "min_p" },
  typical_p: { kind: "float32", param: "typical_p" },
  repeat_last_n: { kind: "integer", param: "repeat_last_n" },
  repeat_penalty: { kind: "float32", param: "repeat_penalty" },
  presence_penalty: { kind: "float32", param: "presence_penalty" },
  frequency_penalty: { kind: "float32", param: "frequency_penalty" },
  mirostat: { kind: "integer", param: "mirostat" },
  mirostat_tau: { kind: "float32", param: "mirostat_tau" },
  mirostat_eta: { kind: "float32", param: "mirostat_eta" },
  stop: { kind: "array", param: "stop" },
};

/** Options that say how a model is loaded: checked for their type only. */
const LOAD_TIME: Readonly<Record<string, OptionKind>> = {
  num_ctx: "integer",
  num_batch: "integer",
  num_gpu: "integer",
  main_gpu: "integer",
  num_thread: "integer",
  use_mmap: "boolean",
};

/** llama-server flags a model is launched with, as the Ollama options they set (`/api/show`'s `parameters`). */
const LAUNCH_PARAMETERS: ReadonlyArray<readonly [string, string]> = [
  ["--ctx-size", "num_ctx"],
  ["--batch-size", "num_batch"],
  ["--n-gpu-layers", "num_gpu"],
  ["--threads", "num_thread"],
  ["--n-predict", "num_predict"],
  ["--keep", "num_keep"],
  ["--seed", "seed"],
  ["--temp", "temperature"],
  ["--top-k", "top_k"],
  ["--top-p", "top_p"],
  ["--min-p", "min_p"],
  ["--typical", "typical_p"],
  ["--repeat-last-n", "repeat_last_n"],
  ["--repeat-penalty", "repeat_penalty"],
  ["--presence-penalty", "presence_penalty"],
  ["--frequency-penalty", "frequency_penalty"],
].map(([flag, option]) => [canonicalFlag(flag), option] as const);

/** The Ollama options a launch sets, numbers as numbers. */
export function launchParameters(options: OptionMap): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [flag, option] of LAUNCH_PARAMETERS) {
    const value = options.get(flag);
    if (typeof value !== "string") continue;
    const n = Number(value);
    out[option] = value.trim() !== "" && Number.isFinite(n) ? n : value;
  }
  return out;
}

/**
 * The llama.cpp parameters for Ollama's `options`; an option of the wrong type is a 400 with
 * Ollama's message. Unknown options are ignored, as Ollama ignores them.
 *
 * @example
 * ```ts
 * samplingParams({ num_predict: 8, temperature: 0, stop: ["\n"] });
 * // { n_predict: 8, temperature: 0, stop: ["\n"] }
 * ```
 */
export function samplingParams(options: unknown): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(optionsObject(options))) {
    // a null option is left at its default (FromMap skips it)
    if (value === null) continue;
    const sampling = SAMPLING[key];
    const kind = sampling?.kind ?? LOAD_TIME[key];
    if (!kind) continue;
    checkKind(key, value, kind);
    if (sampling) params[sampling.param] = kind === "integer" ? Math.trunc(value as number) : value;
  }
  return params;
}

/** `options.num_ctx`, when given. */
export function requestedContext(options: unknown): number | undefined {
  const value = optionsObject(options).num_ctx;
  return typeof value === "number" ? Math.trunc(value) : undefined;
}

/** How a model's context is laid out at launch (from its `-c`, `-np` and `-kvu`). */
export interface ContextLayout {
  /** `--ctx-size`; 0 is the model's training context */
  ctx: number;
  parallel: number;
  /** one KV cache shared by every slot: a request may use all of it */
  kvUnified: boolean;
}

/**
 * The tokens one request may use: the engine's own context when it runs (`engineCtx`), else the
 * launch's `-c`, else the training context; split between the slots unless the cache is unified.
 * 0 when none of these is known.
 */
export function contextPerRequest(layout: ContextLayout, engineCtx?: number, trainCtx?: number): number {
  const total = engineCtx || layout.ctx || trainCtx || 0;
  return layout.kvUnified ? total : Math.floor(total / Math.max(1, layout.parallel));
}

/**
 * `num_ctx` can be honoured when it fits the context each request gets from the model as it runs;
 * a larger one would need the model restarted, which one client's request must not do to others.
 */
export function checkNumCtx(numCtx: number | undefined, model: string, runsWith: number): void {
  if (numCtx === undefined || numCtx <= 0 || runsWith <= 0 || numCtx <= runsWith) return;
  throw badRequest(
    `num_ctx ${numCtx} is more than model '${model}' runs with (${runsWith} tokens per request); ` +
      `start it with a larger context (ctx-size in its preset, or -c)`,
  );
}

function optionsObject(options: unknown): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options)) throw badRequest("options must be an object");
  return options as Record<string, unknown>;
}

function checkKind(key: string, value: unknown, kind: OptionKind): void {
  const ok = kind === "integer" || kind === "float32"
    ? typeof value === "number" && Number.isFinite(value)
    : kind === "boolean"
    ? typeof value === "boolean"
    : Array.isArray(value) && value.every((v) => typeof v === "string");
  if (ok) return;
  const what = kind === "array" ? "an array of strings" : `type ${kind}`;
  throw badRequest(`option "${key}" must be of ${what}`);
}

/** Go's `time.ParseDuration` units, in seconds. */
const UNIT_S: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  "µs": 1e-6,
  "μs": 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};
const DURATION = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * `keep_alive` as Ollama reads it: seconds as a number, or a Go duration (`"5m"`, `"1h30m"`,
 * `"0"`). Negative means never unload (`Infinity`); `undefined` when absent, so that the model's
 * own TTL applies.
 *
 * @example
 * ```ts
 * parseKeepAlive("1m30s"); // 90
 * parseKeepAlive(-1); // Infinity
 * parseKeepAlive(undefined); // undefined
 * ```
 */
export function parseKeepAlive(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  let seconds: number;
  if (typeof value === "number" && Number.isFinite(value)) seconds = value;
  else if (typeof value === "string") seconds = parseGoDuration(value);
  else {throw badRequest(
      `keep_alive must be a number of seconds or a duration string, got ${JSON.stringify(value)}`,
    );}
  return seconds < 0 ? Infinity : seconds;
}

function parseGoDuration(text: string): number {
  if (text === "0" || text === "+0" || text === "-0") return 0;
  if (!DURATION.test(text)) throw badRequest(`time: invalid duration ${JSON.stringify(text)}`);
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) seconds += Number(amount) * UNIT_S[unit];
  return text.startsWith("-") ? -seconds : seconds;
}
