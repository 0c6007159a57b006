/**
 * The upstream HTTP/1.1 client (router/upstream/http1.ts) against a real llama-server serving the tiny test
 * model: plain and streamed answers, llama-server's own keep-alive limits (100 requests per socket, 5 s idle),
 * and an abort mid-generation freeing the engine's only slot. Skipped, with the reason printed, without an engine.
 */
import { writeTinyLlama } from "../fixtures/gguf.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { engineAvailable } from "../helpers/http.ts";
import {
  ENDLESS_ENGINE_ARGS,
  ENDLESS_GENERATION,
  engineBinPath,
  type RunningEngine,
  startEngine,
} from "../helpers/llama_server.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import { UpstreamPool, type UpstreamResponse } from "../../router/upstream/http1.ts";

const ignore = !!await engineAvailable();

const enc = new TextEncoder();
const dec = new TextDecoder();
const JSON_TYPE: [string, string][] = [["Content-Type", "application/json"]];

// deno-lint-ignore no-explicit-any
type Json = any;

function post(pool: UpstreamPool, port: number, path: string, body: unknown, signal?: AbortSignal) {
  return pool.request({
    port,
    method: "POST",
    pathAndQuery: path,
    headers: JSON_TYPE,
    body: enc.encode(JSON.stringify(body)),
    signal,
  });
}

/**
 * The states of the client sockets connected to 127.0.0.1:`port`, as /proc/net/tcp lists them: "01"
 * established, "08" close-wait (the engine has closed its end), "06" time-wait (closed by us).
 */
function clientSocketStates(port: number): string[] {
  const peer = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[2] === peer)
    .map((fields) => fields[3]);
}

function json(res: UpstreamResponse, engine: RunningEngine): Json {
  assert(res.bytes !== null, `a whole body (status ${res.status})\n${engine.log()}`);
  const text = dec.decode(res.bytes);
  assertEquals(res.status, 200, `${text}\n${engine.log()}`);
  return JSON.parse(text);
}

Deno.test({
  name:
    "upstream http1 on llama-server: health, tokenize, chat, SSE, keep-alive limits, abort frees the slot",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "switchyard_upstream_e2e_" });
    let engine: RunningEngine | null = null;
    const pool = new UpstreamPool();
    try {
      const model = `${dir}/tiny.gguf`;
      await writeTinyLlama(model, { name: "tiny-upstream" });
      // One slot, and generations that can be made never to end by themselves (see the abort step).
      engine = await startEngine(engineBinPath(), [
        "-m",
        model,
        "-c",
        "1024",
        "-np",
        "1",
        "--no-webui",
        ...ENDLESS_ENGINE_ARGS,
      ]);
      const e = engine;
      const port = Number(new URL(e.url).port);

      await t.step("GET /health", async () => {
        const res = await pool.request({
          port,
          method: "GET",
          pathAndQuery: "/health",
          headers: [],
          body: null,
        });
        assertEquals(json(res, e).status, "ok");
        assertEquals(res.headers.get("content-length"), null);
        assert(res.headers.get("content-type")?.startsWith("application/json"), "a JSON answer");
      });

      await t.step("POST /tokenize", async () => {
        const tokens = json(await post(pool, port, "/tokenize", { content: "hello world" }), e).tokens;
        assert(Array.isArray(tokens) && tokens.length > 0, JSON.stringify(tokens));
      });

      await t.step("non-streaming chat completion", async () => {
        const body = json(
          await post(pool, port, "/v1/chat/completions", {
            messages: [{ role: "user", content: "hello" }],
            max_tokens: 8,
          }),
          e,
        );
        const choice = body.choices?.[0];
        assertEquals(typeof choice?.message?.content, "string", JSON.stringify(body));
        assertEquals(choice.finish_reason, "length");
        assertEquals(body.usage?.completion_tokens, 8);
      });

      await t.step("streaming chat completion: one event per token, ending with [DONE]", async () => {
        const res = await post(pool, port, "/v1/chat/completions", {
          messages: [{ role: "user", content: "hello" }],
          max_tokens: 32,
          stream: true,
        });
        assertEquals(res.status, 200);
        assert(res.stream !== null, "a stream");
        assertEquals(res.headers.get("content-type"), "text/event-stream");
        const pieces: string[] = [];
        for await (const piece of res.stream) pieces.push(dec.decode(piece));
        await res.done;
        const all = pieces.join("");
        assert(all.endsWith("data: [DONE]\n\n"), `ends with [DONE]: ${JSON.stringify(all.slice(-80))}`);
        const events = all.split("\n\n").filter((s) => s.startsWith("data: ") && s !== "data: [DONE]");
        let content = 0;
        for (const ev of events) if (JSON.parse(ev.slice(6)).choices?.[0]?.delta?.content) content++;
        assertEquals(content, 32, "one event per token");
        // How many reads 32 events take depends on the engine's speed against ours; that pieces are passed on
        // as they come is shown where it cannot: by the abort step's endless stream, and by the unit tests.
        // llama-server closes a socket after its event stream: the pool opens the next one ahead of need
        await waitFor(() => pool.idleCount(port) === 1, HANG_MS, "a fresh socket in place of the stream's");
        const before = pool.stats();
        json(await post(pool, port, "/tokenize", { content: "after a stream" }), e);
        assertEquals(pool.stats().retries, before.retries, "the next request found a live socket");
        assertEquals(pool.stats().connects, before.connects, "...without connecting");
      });

      await t.step("300 sequential /tokenize across llama-server's 100 requests per socket", async () => {
        const fresh = new UpstreamPool();
        try {
          for (let i = 0; i < 300; i++) {
            const tokens = json(await post(fresh, port, "/tokenize", { content: `hello ${i}` }), e).tokens;
            assert(Array.isArray(tokens), `request ${i}`);
          }
          const stats = fresh.stats();
          // llama-server says Connection: close on a socket's 100th answer, so no request ever hits a dead one.
          assertEquals(stats, { connects: 3, retries: 0, prewarmed: 0 });
          // ...the 300th answer is the third socket's 100th, so it was closed rather than pooled.
          assertEquals(fresh.idleCount(port), 0);
        } finally {
          fresh.close();
        }
      });

      await t.step("a socket llama-server dropped after 5 s idle is retried transparently", async () => {
        // Without the pool's own idle limit, the next request takes the socket the engine has closed by then.
        const patient = new UpstreamPool({ idleTimeoutMs: 60_000 });
        try {
          json(await post(patient, port, "/tokenize", { content: "before" }), e);
          // cpp-httplib closes a socket idle for 5 s: wait for that close to reach us, not for the time it takes
          await waitFor(
            () => {
              const states = clientSocketStates(port);
              return states.includes("08") && !states.includes("01");
            },
            HANG_MS,
            "llama-server closing our idle sockets",
          );
          json(await post(patient, port, "/tokenize", { content: "after" }), e);
          assertEquals(patient.stats(), { connects: 2, retries: 1, prewarmed: 0 });
        } finally {
          patient.close();
        }
      });

      await t.step("an abort mid-stream frees the only slot", async () => {
        const ac = new AbortController();
        // It never ends by itself: each piece read came while it ran, and only the abort can free the slot.
        const res = await post(pool, port, "/v1/chat/completions", {
          messages: [{ role: "user", content: "hi" }],
          ...ENDLESS_GENERATION,
          stream: true,
        }, ac.signal);
        const reader = res.stream!.getReader();
        for (let i = 0; i < 3; i++) assert(!(await reader.read()).done, "the generation is running");
        ac.abort();
        await reader.read().then(() => {
          throw new Error("the stream went on after the abort");
        }, () => {});
        await res.done;
        // Left running, the generation would hold the slot for good: this request would never be served.
        const next = json(
          await post(
            pool,
            port,
            "/completion",
            { prompt: "hello", n_predict: 4 },
            AbortSignal.timeout(HANG_MS),
          ),
          e,
        );
        assertEquals(next.tokens_predicted, 4, JSON.stringify(next));
        const slots = json(
          await pool.request({ port, method: "GET", pathAndQuery: "/slots", headers: [], body: null }),
          e,
        );
        assertEquals(slots.filter((s: { is_processing: boolean }) => s.is_processing).length, 0);
      });
    } finally {
      pool.close();
      await engine?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
