/**
 * Observability against the real app in process, on stub engines: `/metrics` (the gateway's families
 * with the values the traffic implies, the engines' own pages relabelled, a hung engine that cannot
 * stall a scrape, which page answers in router and single-model mode), `/activity` and
 * `/models/logs` (JSON and followed), `--no-metrics`, and who may read them. No verdict rests on a
 * duration: counts and labels only, and sums that must be above zero.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { chatBody, expectError } from "../helpers/openai.ts";
import { labelValues, parseSamples, samplesOf, valueOf } from "../helpers/prometheus_text.ts";
import { keyed } from "../helpers/requests.ts";
import { HANG_MS, waitFor, within } from "../helpers/wait.ts";
import type { SeenRequest, StubHttpEngine } from "../fixtures/stub_http_engine.ts";
import { sseData } from "../../ui/sse.js";

const encoder = new TextEncoder();

/** What each answer reports: usage in a whole chat answer, timings in a stream's last event. */
const USAGE = { prompt_tokens: 7, completion_tokens: 3 };
const TIMINGS = { cache_n: 2, prompt_n: 5, predicted_n: 4, predicted_per_second: 250 };

/** llama-server's answers with their usage and timings, as it writes them (keys in sorted order). */
function answersWithUsage(req: SeenRequest): Response | undefined {
  if (req.path !== "/v1/chat/completions") return undefined;
  if (!JSON.parse(req.body).stream) {
    return Response.json({
      choices: [{ finish_reason: "length", index: 0, message: { role: "assistant", content: "a b c" } }],
      object: "chat.completion",
      timings: { cache_n: 0, prompt_n: 7, predicted_n: 3 },
      usage: { ...USAGE, total_tokens: 10 },
    });
  }
  const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    `data: ${
      JSON.stringify({ choices: [{ delta, index: 0 }], object: "chat.completion.chunk", ...extra })
    }\n\n`;
  const events = [
    chunk({ role: "assistant", content: null }),
    chunk({ content: "a" }),
    chunk({}, { timings: TIMINGS }),
    "data: [DONE]\n\n",
  ];
  // a stream of chunks (not one body of known length), as llama-server sends it
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = events.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(encoder.encode(next));
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

function post(gw: InProcessGateway, path: string, json: unknown, key?: string): Promise<Response> {
  return gw.send(path, keyed({ method: "POST", json, key }));
}

async function expectOk(res: Response, context: string): Promise<string> {
  const text = await res.text();
  assertEquals(res.status, 200, `${context}: ${text}`);
  return text;
}

async function scrape(gw: InProcessGateway, path = "/metrics", key?: string): Promise<string> {
  const res = await gw.send(path, keyed({ key }));
  const text = await res.text();
  assertEquals(res.status, 200, `${path}: ${text}`);
  assertMatch(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return text;
}

/** Loads `model` (its first request), so that its stub engine can be told how to answer. */
async function warm(gw: InProcessGateway, model: string): Promise<StubHttpEngine> {
  await expectOk(await post(gw, "/tokenize", { model, content: "x" }), `tokenize ${model}`);
  return gw.engine(model);
}

/** The events of an event-stream response, parsed, one at a time. */
function events(res: Response): AsyncGenerator<Record<string, unknown>> {
  assertEquals(res.status, 200);
  assertMatch(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const data = sseData(res.body!);
  return (async function* () {
    for await (const item of data) yield JSON.parse(item);
  })();
}

async function next(
  feed: AsyncGenerator<Record<string, unknown>>,
  what: string,
): Promise<Record<string, unknown>> {
  const { value, done } = await within(feed.next(), what);
  if (done) throw new Error(`the feed ended before ${what}`);
  return value;
}

Deno.test("/metrics: requests, durations, queue waits, first tokens and tokens per model, endpoint and status", async () => {
  await withInProcess(["alpha", "beta"], {}, async (gw) => {
    const alpha = await warm(gw, "alpha");
    alpha.respond = answersWithUsage;
    for (let i = 0; i < 2; i++) {
      await expectOk(await post(gw, "/v1/chat/completions", chatBody("alpha")), "chat");
    }
    const streamed = await post(gw, "/v1/chat/completions", chatBody("alpha", { stream: true }));
    assertMatch(await expectOk(streamed, "stream"), /data: \[DONE\]/);
    await warm(gw, "beta");
    // names no model has: they are counted, but never become a label
    await expectError(await post(gw, "/v1/chat/completions", chatBody("nope-model")), 400, "unknown model");
    await expectError(await post(gw, "/v1/chat/completions", chatBody("../etc/passwd")), 400, "unsafe name");

    const page = parseSamples(await scrape(gw));
    const requests = (model: string, endpoint: string, status: string) =>
      valueOf(page, "switchyard_requests_total", { model, endpoint, status });
    assertEquals(requests("alpha", "/v1/chat/completions", "200"), 3);
    assertEquals(requests("alpha", "/tokenize", "200"), 1);
    assertEquals(requests("beta", "/tokenize", "200"), 1);
    assertEquals(requests("", "/v1/chat/completions", "400"), 2);
    assertEquals(labelValues(page, "model"), new Set(["alpha", "beta", ""]), "only table ids are labels");

    const durations = { model: "alpha", endpoint: "/v1/chat/completions" };
    assertEquals(valueOf(page, "switchyard_request_duration_seconds_count", durations), 3);
    assert(valueOf(page, "switchyard_request_duration_seconds_sum", durations)! > 0, "durations add up");
    assertEquals(
      valueOf(page, "switchyard_request_duration_seconds_bucket", { ...durations, le: "+Inf" }),
      3,
    );
    // only the streamed answer has a first token; every admitted request waited for its model, if briefly
    assertEquals(valueOf(page, "switchyard_time_to_first_token_seconds_count", { model: "alpha" }), 1);
    assertEquals(valueOf(page, "switchyard_queue_wait_seconds_count", { model: "alpha" }), 4);
    assertEquals(valueOf(page, "switchyard_queue_wait_seconds_count", { model: "beta" }), 1);
    // usage of the two whole answers, timings (prompt_n + cache_n) of the stream's last event
    const prompt = USAGE.prompt_tokens * 2 + TIMINGS.prompt_n + TIMINGS.cache_n;
    const generated = USAGE.completion_tokens * 2 + TIMINGS.predicted_n;
    assertEquals(valueOf(page, "switchyard_tokens_total", { model: "alpha", type: "prompt" }), prompt);
    assertEquals(valueOf(page, "switchyard_tokens_total", { model: "alpha", type: "generated" }), generated);
    assertEquals(
      samplesOf(page, "switchyard_tokens_total", { model: "beta" }),
      [],
      "tokenize counts no tokens",
    );
  });
});

Deno.test("/metrics: loads by result, load durations, unloads by reason, models by state, requests waiting", async () => {
  await withInProcess(["alpha", "beta", "gamma"], { args: ["--models-max", "1"] }, async (gw) => {
    const loaded = gw.nextEvent((e) => e.model === "alpha" && e.data?.status === "loaded");
    await expectOk(await post(gw, "/models/load", { model: "alpha" }), "load alpha");
    await loaded;
    const unloaded = gw.nextEvent((e) => e.model === "alpha" && e.data?.status === "unloaded");
    await expectOk(await post(gw, "/models/unload", { model: "alpha" }), "unload alpha");
    await unloaded;
    gw.starter.failNext = true;
    const failed = gw.nextEvent((e) => e.model === "beta" && e.data?.status === "unloaded");
    await expectOk(await post(gw, "/models/load", { model: "beta" }), "load beta");
    await failed;

    // alpha busy with a held generation; gamma's request waits for the one place (--models-max 1)
    const alpha = await warm(gw, "alpha");
    const hold = alpha.hold();
    const busy = post(gw, "/v1/chat/completions", chatBody("alpha"));
    await within(hold.arrived, "alpha's generation");
    const queued = post(gw, "/tokenize", { model: "gamma", content: "x" });
    await waitFor(() => gw.scheduler.find("gamma")!.waiting === 1, HANG_MS, "gamma's request waiting");

    let page = parseSamples(await scrape(gw));
    assertEquals(valueOf(page, "switchyard_queue_waiting", { model: "gamma" }), 1);
    assertEquals(valueOf(page, "switchyard_queue_waiting", { model: "alpha" }), 0);
    assertEquals(valueOf(page, "switchyard_models", { state: "loaded" }), 1);
    assertEquals(valueOf(page, "switchyard_models", { state: "failed" }), 1, "beta failed");
    assertEquals(valueOf(page, "switchyard_models", { state: "unloaded" }), 1, "gamma");
    assertEquals(valueOf(page, "switchyard_models", { state: "loading" }), 0);

    hold.release();
    await expectOk(await busy, "alpha's chat");
    await expectOk(await queued, "gamma's tokenize, once alpha made room");
    page = parseSamples(await scrape(gw));
    assertEquals(valueOf(page, "switchyard_model_loads_total", { model: "alpha", result: "success" }), 2);
    assertEquals(valueOf(page, "switchyard_model_loads_total", { model: "beta", result: "failure" }), 1);
    assertEquals(valueOf(page, "switchyard_model_loads_total", { model: "gamma", result: "success" }), 1);
    assertEquals(valueOf(page, "switchyard_model_load_duration_seconds_count", { model: "alpha" }), 2);
    assertEquals(samplesOf(page, "switchyard_model_load_duration_seconds_count", { model: "beta" }), []);
    assertEquals(valueOf(page, "switchyard_model_unloads_total", { model: "alpha", reason: "requested" }), 1);
    assertEquals(valueOf(page, "switchyard_model_unloads_total", { model: "alpha", reason: "evicted" }), 1);
    assertEquals(valueOf(page, "switchyard_model_unloads_total", { model: "beta", reason: "crashed" }), 1);
    assert(valueOf(page, "switchyard_queue_wait_seconds_sum", { model: "gamma" })! > 0, "gamma waited");
    assertEquals(valueOf(page, "switchyard_queue_waiting", { model: "gamma" }), 0);
  });
});

const ENGINE_PAGE = [
  "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens",
  "# TYPE llamacpp:prompt_tokens_total counter",
  "llamacpp:prompt_tokens_total 23",
  "# HELP llamacpp:requests_processing Number of requests processing",
  "# TYPE llamacpp:requests_processing gauge",
  "llamacpp:requests_processing 0",
  "",
].join("\n");

Deno.test("/metrics: every engine's own page, each sample labelled with its model; a hung engine does not stall it", async () => {
  await withInProcess(["alpha", "beta"], {}, async (gw) => {
    const ownPage = (req: SeenRequest) => req.path === "/metrics" ? new Response(ENGINE_PAGE) : undefined;
    (await warm(gw, "alpha")).respond = ownPage;
    const beta = await warm(gw, "beta");
    // beta starts its page and never ends it
    beta.respond = (req) =>
      req.path === "/metrics"
        ? new Response(
          new ReadableStream({ start: (c) => c.enqueue(encoder.encode("# HELP llamacpp:x y\n")) }),
        )
        : undefined;
    let page = await scrape(gw);
    assertEquals(valueOf(page, "llamacpp:prompt_tokens_total", { model: "alpha" }), 23);
    assertEquals(samplesOf(page, "llamacpp:prompt_tokens_total", { model: "beta" }), []);
    assertEquals(valueOf(page, "switchyard_engine_metrics_up", { model: "alpha" }), 1);
    assertEquals(valueOf(page, "switchyard_engine_metrics_up", { model: "beta" }), 0);

    beta.respond = ownPage;
    page = await scrape(gw);
    assertEquals(valueOf(page, "llamacpp:requests_processing", { model: "alpha" }), 0);
    assertEquals(valueOf(page, "llamacpp:requests_processing", { model: "beta" }), 0);
    assertEquals(valueOf(page, "switchyard_engine_metrics_up", { model: "beta" }), 1);
    // one family, one HELP and TYPE, both engines' samples under it
    const lines = page.split("\n");
    assertEquals(lines.filter((l) => l.startsWith("# TYPE llamacpp:prompt_tokens_total ")).length, 1);
    const at = lines.indexOf("# TYPE llamacpp:prompt_tokens_total counter");
    assertEquals(lines.slice(at + 1, at + 3).sort(), [
      'llamacpp:prompt_tokens_total{model="alpha"} 23',
      'llamacpp:prompt_tokens_total{model="beta"} 23',
    ]);
    // the page the gateway asked each engine for is the engine's own, under its path
    assert(beta.requests.some((r) => r.url === "/metrics"), "beta was asked for /metrics");
  });
});

Deno.test("/metrics?model=ID is that engine's page (501 unless --metrics was asked for); engines always run with --metrics", async () => {
  await withInProcess(["alpha"], {}, async (gw) => {
    await warm(gw, "alpha");
    assert(gw.starter.launches[0].args.includes("--metrics"), "the engine serves its page to the gateway");
    const res = await gw.send("/metrics?model=alpha");
    await expectError(res, 501, "not asked for", { type: "not_supported_error" });
    assert(!gw.engine("alpha").requests.some((r) => r.path === "/metrics"), "not proxied");
    await expectError(await gw.send("/metrics?model=nope"), 400, "an unknown model");
  });
  const preset = async (dir: string) => {
    const file = join(dir, "preset.ini");
    await Deno.writeTextFile(file, `[alpha]\nmodel = ${join(dir, "alpha.gguf")}\nmetrics = true\n`);
    return { args: ["--models-preset", file] };
  };
  await withInProcess(["alpha"], preset, async (gw) => {
    await warm(gw, "alpha");
    const res = await gw.send("/metrics?model=alpha");
    assertEquals(await res.text(), "llamacpp:requests_processing 0\n", "the preset asked for it");
  });
});

Deno.test("single-model command line: /metrics is the default engine's page, /metrics/gateway the gateway's", async () => {
  const setup = (dir: string) => ({ args: ["-m", join(dir, "solo.gguf"), "--metrics"] });
  await withInProcess(["solo", "other"], setup, async (gw, dir) => {
    // named as llama-server names it: by its path
    const id = join(dir, "solo.gguf");
    await waitFor(() => gw.scheduler.find(id)?.ready === true, HANG_MS, "the default model ready");
    assertEquals(await (await gw.send("/metrics")).text(), "llamacpp:requests_processing 0\n");
    const page = await scrape(gw, "/metrics/gateway");
    assertEquals(valueOf(page, "switchyard_models", { state: "loaded" }), 1);
    assertEquals(valueOf(page, "llamacpp:requests_processing", { model: id }), 0);
  });
});

Deno.test("--no-metrics: nothing is recorded, /metrics and /activity answer 501, engines run without --metrics", async () => {
  await withInProcess(["alpha"], { args: ["--no-metrics"] }, async (gw) => {
    await warm(gw, "alpha");
    assert(!gw.starter.launches[0].args.includes("--metrics"));
    for (const path of ["/metrics", "/metrics/gateway", "/activity"]) {
      await expectError(await gw.send(path), 501, path, { type: "not_supported_error" });
    }
    // the engine's own page is the engine's business again
    await expectOk(await gw.send("/metrics?model=alpha"), "proxied as before");
  });
});

Deno.test("/activity: the last requests, newest first, filtered and limited; followed as events", async () => {
  await withInProcess(["alpha", "beta"], {}, async (gw) => {
    const alpha = await warm(gw, "alpha");
    alpha.respond = answersWithUsage;
    await expectOk(await post(gw, "/v1/chat/completions", chatBody("alpha", { stream: true })), "stream");
    await expectOk(await post(gw, "/v1/chat/completions", chatBody("alpha")), "chat");
    await warm(gw, "beta");

    const all = await (await gw.send("/activity")).json();
    assertEquals(all.object, "list");
    assertEquals(
      all.data.map((e: { model: string; endpoint: string }) => `${e.model} ${e.endpoint}`),
      ["beta /tokenize", "alpha /v1/chat/completions", "alpha /v1/chat/completions", "alpha /tokenize"],
    );
    const [, whole, stream] = all.data;
    assertEquals(
      [whole.status, whole.streamed, whole.prompt_tokens, whole.generated_tokens, whole.ttft_ms],
      [200, false, USAGE.prompt_tokens, USAGE.completion_tokens, null],
    );
    assertEquals(
      [stream.streamed, stream.prompt_tokens, stream.generated_tokens, stream.tokens_per_s],
      [true, TIMINGS.prompt_n + TIMINGS.cache_n, TIMINGS.predicted_n, TIMINGS.predicted_per_second],
      "a stream: its last event's timings, the engine's own speed",
    );
    assert(stream.ttft_ms > 0 && stream.ttft_ms <= stream.duration_ms, JSON.stringify(stream));
    assert(whole.tokens_per_s > 0, "a whole answer's speed, over its generation");
    assert(typeof whole.queue_wait_ms === "number" && !Number.isNaN(Date.parse(whole.time)));

    const onlyAlpha = await (await gw.send("/activity?model=alpha&limit=2")).json();
    assertEquals(onlyAlpha.data.length, 2);
    assert(onlyAlpha.data.every((e: { model: string }) => e.model === "alpha"));
    await expectError(await gw.send("/activity?limit=0"), 400, "limit 0");
    await expectError(await gw.send("/activity?model=nope"), 400, "unknown model");

    const controller = new AbortController();
    const feed = events(await gw.send("/activity?follow=1&model=alpha", { signal: controller.signal }));
    const snapshot = await next(feed, "the snapshot");
    assertEquals([snapshot.event, (snapshot.data as unknown[]).length], ["snapshot", 3]);
    await warm(gw, "beta");
    await expectOk(await post(gw, "/v1/chat/completions", chatBody("alpha")), "chat");
    const update = await next(feed, "the next request");
    assertEquals(update.event, "activity");
    assertEquals(
      (update.data as { model: string }[]).map((e) => e.model),
      ["alpha"],
      "beta's is not followed",
    );
    controller.abort();
  });
});

Deno.test("/models/logs: a model's recent lines, and followed: those first, then each new line", async () => {
  await withInProcess(["alpha"], {}, async (gw) => {
    await expectError(await gw.send("/models/logs?model=nope"), 400, "unknown model");
    gw.starter.failWith = ["first failure line"];
    let failed = gw.nextEvent((e) => e.model === "alpha" && e.data?.status === "unloaded");
    await expectOk(await post(gw, "/models/load", { model: "alpha" }), "load");
    await failed;
    const recent = await (await gw.send("/models/logs?model=alpha")).json();
    assertEquals(recent, { model: "alpha", lines: ["first failure line"] });

    const controller = new AbortController();
    const feed = events(await gw.send("/models/logs?model=alpha&follow=1", { signal: controller.signal }));
    assertEquals(await next(feed, "the snapshot"), {
      model: "alpha",
      event: "snapshot",
      data: { lines: ["first failure line"] },
    });
    gw.starter.failWith = ["second failure line"];
    failed = gw.nextEvent((e) => e.model === "alpha" && e.data?.status === "unloaded");
    await expectOk(await post(gw, "/models/load", { model: "alpha" }), "load again");
    await failed;
    assertEquals(await next(feed, "the new line"), {
      model: "alpha",
      event: "log",
      data: { lines: ["second failure line"] },
    });
    controller.abort();
  });
});

Deno.test("admin keys: /metrics, /activity and /models/logs are the admins'; a key's model list narrows them", async () => {
  const setup = async (dir: string) => {
    const admins = join(dir, "admins.txt");
    await Deno.writeTextFile(admins, "adm-all\nadm-alpha models=alpha\n");
    return { args: ["--api-key", "user", "--admin-api-key-file", admins] };
  };
  await withInProcess(["alpha", "beta"], setup, async (gw) => {
    for (const model of ["alpha", "beta"]) {
      await expectOk(await post(gw, "/tokenize", { model, content: "x" }, "adm-all"), model);
    }
    for (const path of ["/metrics", "/metrics/gateway", "/activity", "/models/logs?model=alpha"]) {
      await expectError(await gw.send(path, keyed({ key: "user" })), 403, `${path} for a user`, {
        type: "permission_error",
      });
    }
    const everything = await scrape(gw, "/metrics", "adm-all");
    assertEquals(labelValues(everything, "model"), new Set(["alpha", "beta"]));
    const narrowed = await scrape(gw, "/metrics", "adm-alpha");
    assertEquals(labelValues(narrowed, "model"), new Set(["alpha"]), "only alpha's series");
    assertEquals(
      valueOf(narrowed, "switchyard_models", { state: "loaded" }),
      2,
      "totals without a model stay",
    );
    const activity = await (await gw.send("/activity", keyed({ key: "adm-alpha" }))).json();
    assertEquals(activity.data.map((e: { model: string }) => e.model), ["alpha"]);
    await expectError(
      await gw.send("/activity?model=beta", keyed({ key: "adm-alpha" })),
      403,
      "beta's activity",
    );
    await expectError(
      await gw.send("/models/logs?model=beta", keyed({ key: "adm-alpha" })),
      403,
      "beta's log",
    );
    await expectError(await gw.send("/metrics?model=beta", keyed({ key: "adm-alpha" })), 403, "beta's page");
  });
});
