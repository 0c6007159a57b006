/** The activity ring (bounded, newest first, filtered, followed) and how a finished request reads in it. */
import { assertEquals } from "../helpers/assert.ts";
import { activityEntry, ActivityRing } from "../../router/activity/ring.ts";
import type { FinishedRequest } from "../../router/metrics/tap.ts";

const request = (extra: Partial<FinishedRequest> = {}): FinishedRequest => ({
  startedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
  model: "alpha",
  endpoint: "/v1/chat/completions",
  status: 200,
  streamed: false,
  queueWaitMs: 1.234567,
  durationMs: 501.005,
  usage: {},
  ...extra,
});

Deno.test("activityEntry: fields, rounding, and tokens per second from the engine or over the generation", () => {
  assertEquals(activityEntry(request({ usage: { prompt: 5, generated: 10 } })), {
    time: "2026-01-02T03:04:05.006Z",
    model: "alpha",
    endpoint: "/v1/chat/completions",
    status: 200,
    streamed: false,
    queue_wait_ms: 1.23,
    ttft_ms: null,
    duration_ms: 501.01,
    prompt_tokens: 5,
    generated_tokens: 10,
    // 10 tokens over the 499.77 ms after the wait
    tokens_per_s: 20.01,
  });
  const streamed = request({
    streamed: true,
    firstChunkMs: 100,
    durationMs: 300,
    usage: { generated: 10 },
  });
  assertEquals(activityEntry(streamed).ttft_ms, 100);
  assertEquals(activityEntry(streamed).tokens_per_s, 50, "over the 200 ms from the first chunk");
  assertEquals(
    activityEntry({ ...streamed, usage: { generated: 10, generatedPerSecond: 812.345 } }).tokens_per_s,
    812.35,
  );
  // llama.cpp reports 0 for a single token (no decode step): the gateway's own figure then
  assertEquals(
    activityEntry({ ...streamed, usage: { generated: 1, generatedPerSecond: 0 } }).tokens_per_s,
    5,
  );
  const refused = activityEntry(request({ model: undefined, status: 400, queueWaitMs: undefined }));
  assertEquals([refused.model, refused.queue_wait_ms, refused.tokens_per_s], [null, null, null]);
});

Deno.test("ActivityRing: keeps the last N, newest first, filtered and limited; listeners hear each new entry", () => {
  const ring = new ActivityRing(3);
  const heard: number[] = [];
  const stop = ring.subscribe((e) => heard.push(e.status));
  const entry = (status: number, model = "a"): FinishedRequest => request({ status, model });
  assertEquals(ring.recent(), []);
  ring.push(entry(1));
  ring.push(entry(2, "b"));
  assertEquals(ring.recent().map((e) => e.status), [2, 1]);
  ring.push(entry(3));
  ring.push(entry(4, "b"));
  ring.push(entry(5));
  assertEquals(ring.recent().map((e) => e.status), [5, 4, 3], "the oldest went first");
  assertEquals(ring.recent((e) => e.model === "a").map((e) => e.status), [5, 3]);
  assertEquals(ring.recent(undefined, 2).map((e) => e.status), [5, 4]);
  stop();
  ring.push(entry(6));
  assertEquals(heard, [1, 2, 3, 4, 5]);
});
