/**
 * Ollama's `options` and `keep_alive` (router/ollama/options.ts): mapped onto llama.cpp's parameters,
 * type errors in Ollama's words, Go durations, and the context a request may ask for.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { ApiError } from "../../router/errors.ts";
import {
  checkNumCtx,
  contextPerRequest,
  launchParameters,
  parseKeepAlive,
  requestedContext,
  samplingParams,
} from "../../router/ollama/options.ts";

function badRequestOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert(err instanceof ApiError, `an ApiError, got ${err}`);
    assertEquals(err.status, 400);
    return err.message;
  }
  throw new Error("expected a 400");
}

Deno.test("options: sampling options become llama.cpp's parameters; load-time and unknown ones are left out", () => {
  const params = samplingParams({
    num_predict: 8,
    num_keep: 2,
    seed: 42,
    temperature: 0.5,
    top_k: 10,
    top_p: 0.9,
    min_p: 0.1,
    typical_p: 1,
    repeat_last_n: 16,
    repeat_penalty: 1.1,
    presence_penalty: 0.2,
    frequency_penalty: 0.3,
    mirostat: 2,
    mirostat_tau: 5,
    mirostat_eta: 0.1,
    stop: ["\n", "user:"],
    num_ctx: 2048,
    num_gpu: 99,
    num_thread: 4,
    use_mmap: false,
    tfs_z: 1,
    penalize_newline: true,
    temperature_unknown: 3,
  });
  assertEquals(params, {
    n_predict: 8,
    n_keep: 2,
    seed: 42,
    temperature: 0.5,
    top_k: 10,
    top_p: 0.9,
    min_p: 0.1,
    typical_p: 1,
    repeat_last_n: 16,
    repeat_penalty: 1.1,
    presence_penalty: 0.2,
    frequency_penalty: 0.3,
    mirostat: 2,
    mirostat_tau: 5,
    mirostat_eta: 0.1,
    stop: ["\n", "user:"],
  });
});

Deno.test("options: integers are truncated as Go does; null is left at its default; none is {}", () => {
  assertEquals(samplingParams({ num_predict: 7.9, seed: null }), { n_predict: 7 });
  assertEquals(samplingParams(undefined), {});
  assertEquals(samplingParams(null), {});
});

Deno.test("options: a wrong type is a 400 in Ollama's words, load-time options included", () => {
  assertEquals(
    badRequestOf(() => samplingParams({ num_predict: "8" })),
    'option "num_predict" must be of type integer',
  );
  assertEquals(
    badRequestOf(() => samplingParams({ temperature: true })),
    'option "temperature" must be of type float32',
  );
  assertEquals(
    badRequestOf(() => samplingParams({ stop: "\n" })),
    'option "stop" must be of an array of strings',
  );
  assertEquals(
    badRequestOf(() => samplingParams({ stop: [1] })),
    'option "stop" must be of an array of strings',
  );
  assertEquals(
    badRequestOf(() => samplingParams({ use_mmap: 1 })),
    'option "use_mmap" must be of type boolean',
  );
  assertEquals(
    badRequestOf(() => samplingParams({ num_ctx: "big" })),
    'option "num_ctx" must be of type integer',
  );
  assertEquals(badRequestOf(() => samplingParams([1])), "options must be an object");
});

const KEEP_ALIVE: [unknown, number | undefined][] = [
  [undefined, undefined],
  [null, undefined],
  [0, 0],
  ["0", 0],
  [300, 300],
  [1.5, 1.5],
  ["5m", 300],
  ["1h30m", 5400],
  ["1.5h", 5400],
  ["90s", 90],
  ["300ms", 0.3],
  ["2h45m10s", 9910],
  [-1, Infinity],
  ["-1m", Infinity],
  ["-0", 0],
];
for (const [given, seconds] of KEEP_ALIVE) {
  Deno.test(`keep_alive: ${JSON.stringify(given)} is ${seconds} s`, () => {
    const parsed = parseKeepAlive(given);
    if (seconds === undefined || !Number.isFinite(seconds)) assertEquals(parsed, seconds);
    else assert(Math.abs(parsed! - seconds) < 1e-9, `${parsed} ≈ ${seconds}`);
  });
}

Deno.test("keep_alive: what Go's ParseDuration refuses is a 400", () => {
  for (const bad of ["5", "5 m", "m", "1d", "", "forever", "1h-5m"]) {
    assertMatch(badRequestOf(() => parseKeepAlive(bad)), /^time: invalid duration/, JSON.stringify(bad));
  }
  assertMatch(badRequestOf(() => parseKeepAlive(true)), /keep_alive must be/);
  assertMatch(badRequestOf(() => parseKeepAlive({})), /keep_alive must be/);
});

Deno.test("num_ctx: honoured up to the context a request gets, refused above it with what to do", () => {
  assertEquals(requestedContext({ num_ctx: 1024.5 }), 1024);
  assertEquals(requestedContext({}), undefined);
  checkNumCtx(undefined, "alpha", 512);
  checkNumCtx(512, "alpha", 512);
  checkNumCtx(256, "alpha", 512);
  // an unknown context is not a reason to refuse
  checkNumCtx(4096, "alpha", 0);
  const message = badRequestOf(() => checkNumCtx(4096, "alpha", 512));
  assertMatch(message, /num_ctx 4096 .* 'alpha' runs with \(512 tokens per request\)/);
  assertMatch(message, /ctx-size/);
});

Deno.test("context per request: the engine's own, else -c, else the training context; split across slots", () => {
  const unified = { ctx: 2048, parallel: 4, kvUnified: true };
  const split = { ctx: 2048, parallel: 4, kvUnified: false };
  assertEquals(contextPerRequest(unified), 2048);
  assertEquals(contextPerRequest(split), 512);
  assertEquals(contextPerRequest(split, 4096), 1024, "the engine's figure wins");
  assertEquals(contextPerRequest({ ctx: 0, parallel: 1, kvUnified: false }, undefined, 8192), 8192);
  assertEquals(contextPerRequest({ ctx: 0, parallel: 1, kvUnified: false }), 0);
});

Deno.test("launch parameters: the flags a model runs with, as Ollama's option names", () => {
  const options = new Map<string, string | boolean>([
    ["--ctx-size", "512"],
    ["--temperature", "0.7"],
    ["--top-k", "20"],
    ["--n-gpu-layers", "auto"],
    ["--jinja", true],
  ]);
  assertEquals(launchParameters(options), { num_ctx: 512, temperature: 0.7, top_k: 20, num_gpu: "auto" });
});
