/**
 * The gateway's log lines as `--log-format` asks: `text` (a time of day, then the line, as always) or
 * `json`, one object a line for log shippers, with the model a line is about, what happened (`event`)
 * and why (`reason`), read from the line itself. The gateway's lines keep being written as sentences
 * for people; the table below knows their shapes, and a line it does not know is still an object,
 * with its text in `msg`.
 */
import type { LogFormat } from "../config.ts";

export interface LogFields {
  level: "info" | "warning" | "error";
  /** the model-table id the line is about */
  model?: string;
  /** what happened: `loading`, `ready`, `stopped`, `exited`, `evicting`, `engine_log`... */
  event?: string;
  /** why a model went (an unload reason: `requested`, `evicted`, `idle`...) */
  reason?: string;
  msg: string;
}

interface Shape {
  pattern: RegExp;
  event: string;
  /** the unload reason this shape always means; else the `reason` group, if any */
  reason?: string;
  level?: LogFields["level"];
}

/** The scheduler's and the gateway's lines, by shape; the first match wins. Groups: `model`, `reason`. */
const SHAPES: readonly Shape[] = [
  { pattern: /^loading (?<model>.+)$/, event: "loading" },
  { pattern: /^(?<model>.+) is ready on port \d+$/, event: "ready" },
  { pattern: /^(?<model>.+) stopped \(code [^)]*\): (?<reason>\S+)$/, event: "stopped" },
  { pattern: /^(?<model>.+) exited \(code [^)]*\): (?<reason>\S+)$/, event: "exited", level: "warning" },
  { pattern: /^evicting (?<model>.+?) \(.*\) to .+$/, event: "evicting", reason: "evicted" },
  { pattern: /^(?<model>.+) idle for \d+ s: unloading it$/, event: "idle", reason: "idle" },
  { pattern: /^(?<model>.+) cannot be loaded: /, event: "load_refused", level: "warning" },
  {
    pattern: /^(?<model>.+) crashed \d+ times in a row: restarting in /,
    event: "restart_backoff",
    level: "warning",
  },
  {
    pattern: /^(?<model>.+) ran out of memory while loading /,
    event: "out_of_memory",
    reason: "memory",
    level: "warning",
  },
  { pattern: /^(?<model>.+): no output for \d+ s while loading/, event: "load_hung", level: "warning" },
  { pattern: /^(?<model>.+) died before answering a request; retrying/, event: "retry", level: "warning" },
  { pattern: /^deleted (?<model>.+): \d+ files$/, event: "deleted" },
  { pattern: /^single-model command line: (?<model>.+) is the default model$/, event: "default_model" },
  { pattern: /^models reloaded: /, event: "reload" },
  { pattern: /^reload failed, /, event: "reload_failed", level: "error" },
  { pattern: /^memory: (?:(?<model>[^\s:]+): )?/, event: "memory" },
  { pattern: /^listening on /, event: "listening" },
  { pattern: /^internal error: /, event: "internal_error", level: "error" },
  { pattern: /^warning: /, event: "warning", level: "warning" },
  { pattern: /^error: /, event: "error", level: "error" },
];

/** An engine's line as the gateway relays it: `[model] text`. */
const ENGINE_LINE = /^\[(?<model>[^\]]+)\] (?<text>.*)$/;

/**
 * What one line says, by its shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(classify("alpha stopped (code 0): evicted"), {
 *   level: "info", event: "stopped", model: "alpha", reason: "evicted", msg: "alpha stopped (code 0): evicted",
 * });
 * ```
 */
export function classify(line: string): LogFields {
  const engine = line.match(ENGINE_LINE);
  if (engine) {
    return { level: "info", event: "engine_log", model: engine.groups!.model, msg: engine.groups!.text };
  }
  for (const shape of SHAPES) {
    const m = line.match(shape.pattern);
    if (!m) continue;
    const fields: LogFields = { level: shape.level ?? "info", event: shape.event, msg: line };
    if (m.groups?.model) fields.model = m.groups.model;
    const reason = shape.reason ?? m.groups?.reason;
    if (reason) fields.reason = reason;
    return fields;
  }
  return { level: "info", msg: line };
}

/**
 * A log message as written to stderr. A batch of an engine's lines becomes one object each; any other
 * message (a stack trace, say) stays one object, its line breaks inside `msg`.
 */
export function formatLog(message: string, format: LogFormat, now: Date): string {
  if (format === "text") return `${now.toISOString().slice(11, 23)} ${message}`;
  const time = now.toISOString();
  const lines = message.split("\n");
  const parts = lines.length > 1 && lines.every((l) => ENGINE_LINE.test(l)) ? lines : [message];
  return parts.map((part) => JSON.stringify({ time, ...classify(part) })).join("\n");
}
