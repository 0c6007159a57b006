/**
 * Whether a failed spawn's log names its error. llama.cpp's logger is leaked on purpose and its queue
 * is not flushed at exit (common/log.cpp, llama.cpp issue #22142): an engine that fails fast on a busy
 * machine can exit before its error lines are written, as measured here (a load of a file that is not a
 * GGUF, read through a pipe while every core is busy: 14 of 120 runs lost the lines naming the error).
 * The scheduler then asks for its own reading of what is wrong.
 */

/** A line llama.cpp logged at error level: its timestamp (`0.00.003.645`), then `E`. */
const ENGINE_ERROR_LINE = /^\s*\d+(?:\.\d+)+\s+E\s/;

/**
 * @example
 * ```ts
 * import assert from "node:assert";
 * assert.ok(engineLoggedAnError(["0.00.003.645 E gguf_init_from_reader: invalid magic characters"]));
 * assert.ok(!engineLoggedAnError(["0.00.002.232 I srv         start: binding port"]));
 * ```
 */
export function engineLoggedAnError(lines: readonly string[]): boolean {
  return lines.some((line) => ENGINE_ERROR_LINE.test(line));
}
