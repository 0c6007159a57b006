/**
 * The engine's per-request trace lines, dropped once it is ready when only the gateway wanted them.
 *
 * A memory-aware gateway launches engines at `-lv 4` (router/memory/launch_options.ts), the lowest
 * verbosity at which libllama logs the buffer sizes of a load. At that level llama-server also traces
 * every request: slot selection, the prompt cache's whole state (a line per cached prompt), the sampler
 * settings. Measured on the tiny model: 7 lines a 64-token stream at `-lv 3`, 89 at `-lv 4` with a warm
 * prompt cache, and relaying them cost the runner 36-57 µs of CPU per streamed event, the gateway
 * 30-40 µs more, and the first event 1 ms. None of them carries a figure the gateway reads, and the user
 * asked for the default verbosity, so after `ready` they go no further than the runner.
 *
 * The messages are those of the `SRV_TRC`/`SLT_TRC` calls on the serving path of the pinned source
 * (tools/server/server-context.cpp, server-task.cpp, server-stream.cpp, server-http.cpp); the load's
 * lines, warnings, errors and anything this list does not name pass through, as from any other engine.
 */

/** The message texts, after llama-server's `srv  <func>: ` or `slot <func>: id N | task N | ` head. */
const SERVER_MESSAGES = [
  "conv_id=",
  "done request:",
  "updating prompt cache",
  "prompt cache update took",
  "launching slots for parent task",
  " - saving prompt with length",
  " - looking for better prompt",
  " - found better prompt",
  " - prompt is already in the cache",
  " - removing obsolete cached prompt",
  " - cache state:",
  "   - prompt with length",
  "   - prompt 0x",
  "all slots are idle",
];
const SLOT_MESSAGES = [
  " - skipping, ",
  " - checking sim",
  " - copying state to child",
  "sampler chain:",
  "sampler params:",
  "saving idle slot to prompt cache",
  "clearing prompt with",
  "new prompt, n_ctx_slot",
  "cached n_tokens =",
  "init sampler, took",
  "reusing chunk with size",
  "checking checkpoint with",
  "created context checkpoint",
  "restored context checkpoint",
  "erasing context checkpoint",
  "erased invalidated context checkpoint",
];

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const anyOf = (texts: readonly string[]) => texts.map(escape).join("|");

/** `[timestamp ][I ]` then a server or slot head of the engine's log format (common/log.cpp, server-common.h). */
const TRACE_RE = new RegExp(
  String.raw`^(?:\d+\.\d+\.\d+\.\d+ )?(?:I )?(?:srv  .{12}: (?:${anyOf(SERVER_MESSAGES)})|` +
    String.raw`slot .{12}: id +-?\d+ \| task -?\d+ \| (?:${anyOf(SLOT_MESSAGES)}))`,
);

/**
 * Decides line by line, for one of the engine's output streams, what goes on. A multi-line message
 * (`sampler params:` and its tab-indented settings) is dropped whole.
 *
 * @example
 * ```ts
 * const filter = new ServingTraceFilter();
 * filter.keep("0.00.419.280 I srv  get_availabl: prompt cache update took 0.12 ms"); // false
 * filter.keep("0.00.429.743 I slot      release: id  3 | task 27 | stop processing: n_tokens = 11"); // true
 * ```
 */
export class ServingTraceFilter {
  #inDropped = false;

  keep(line: string): boolean {
    if (this.#inDropped && line.startsWith("\t")) return false;
    this.#inDropped = TRACE_RE.test(line);
    return !this.#inDropped;
  }
}
