/**
 * `--log-format json`: the gateway's lines as JSON objects with model, event and reason. The lines
 * are the ones a real scheduler writes (on a stub starter), so a reworded log line shows up here.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setup, use } from "../helpers/scheduler_setup.ts";
import { within } from "../helpers/wait.ts";
import { classify, formatLog, type LogFields } from "../../router/logs/format.ts";

const NOW = new Date(Date.UTC(2026, 4, 6, 7, 8, 9, 10));

Deno.test("a scheduler's own lines: loading, ready, evicting, stopped and exited with their reason, engine lines", async () => {
  const lines: string[] = [];
  const { scheduler, starter, events } = setup(1, ["a", "b"], { log: (line) => lines.push(line) });
  (await within(use(scheduler, "a"), "a ready")).release();
  starter.failWith = ["llama_model_load: error loading model"];
  const exits = new Promise<void>((resolve) => {
    let seen = 0;
    events.subscribe((e) => e.data?.status === "unloaded" && ++seen === 2 && resolve());
  });
  await within(use(scheduler, "b").then(() => {}, () => {}), "b's load ends");
  await within(exits, "a's and b's exits");
  await scheduler.shutdown();

  const fields = lines.flatMap((l) => formatLog(l, "json", NOW).split("\n")).map((l) => JSON.parse(l));
  const about = (model: string, event: string): LogFields[] =>
    fields.filter((f) => f.model === model && f.event === event);
  assertEquals(about("a", "loading").length, 1, JSON.stringify(fields, null, 1));
  assertEquals(about("a", "ready").length, 1);
  assertEquals(about("a", "evicting").map((f) => f.reason), ["evicted"]);
  assertEquals(about("a", "stopped").map((f) => f.reason), ["evicted"]);
  assertEquals(about("b", "exited").map((f) => [f.reason, f.level]), [["crashed", "warning"]]);
  assertEquals(about("b", "engine_log").map((f) => f.msg), ["llama_model_load: error loading model"]);
  assert(fields.every((f) => f.time === NOW.toISOString() && typeof f.msg === "string"));
});

Deno.test("classify: the gateway's other lines, and a line it does not know", () => {
  const cases: [string, Partial<LogFields>][] = [
    ["a idle for 30 s: unloading it", { model: "a", event: "idle", reason: "idle" }],
    ["a cannot be loaded: needs 9 GiB", { model: "a", event: "load_refused", level: "warning" }],
    ["a crashed 2 times in a row: restarting in 2000 ms", { model: "a", event: "restart_backoff" }],
    ["a ran out of memory while loading (x); trying once more", { model: "a", reason: "memory" }],
    ["a: no output for 120 s while loading: the engine looks hung, killing it", { event: "load_hung" }],
    ["deleted owner/repo:Q4_K_M: 2 files", { model: "owner/repo:Q4_K_M", event: "deleted" }],
    ["listening on http://127.0.0.1:8080", { event: "listening" }],
    ["memory: a: the engine's buffers take 1.4 MiB on Host", { model: "a", event: "memory" }],
    ["memory: Host 23.5 GiB (22.8 GiB free), budget 22.4 GiB", { model: undefined, event: "memory" }],
    ["warning: something", { event: "warning", level: "warning" }],
    ["internal error: Error: boom", { event: "internal_error", level: "error" }],
    ["something new", { level: "info", msg: "something new" }],
  ];
  for (const [line, expected] of cases) {
    const got = classify(line);
    for (const [k, v] of Object.entries(expected)) {
      assertEquals(got[k as keyof LogFields], v, `${line}: ${k}`);
    }
  }
});

Deno.test("formatLog: text keeps the time of day; json writes one object per engine line, one for other messages", () => {
  assertEquals(formatLog("loading a", "text", NOW), "07:08:09.010 loading a");
  const batch = formatLog("[a] first\n[a] second", "json", NOW).split("\n").map((l) => JSON.parse(l));
  assertEquals(batch.map((o) => [o.model, o.event, o.msg]), [["a", "engine_log", "first"], [
    "a",
    "engine_log",
    "second",
  ]]);
  const stack = formatLog("internal error: Error: x\n    at f (file.ts:1)", "json", NOW).split("\n");
  assertEquals(stack.length, 1, "a stack stays one object");
  assertEquals(JSON.parse(stack[0]).msg, "internal error: Error: x\n    at f (file.ts:1)");
});
