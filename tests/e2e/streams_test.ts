/**
 * Resumable streams end to end, on real llama-server engines: a streamed chat with a conversation id,
 * its lookup, a replay from an offset, a stop (of a finished stream and of a live one), a client that
 * leaves mid-stream, and the owner still loading (a gate holds the engine's start until the test
 * opens it, so no verdict waits on a timer). Then `/tools` and `/cors-proxy` with their flags.
 * Generations are bounded by tokens, or endless and stopped by the test.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { fakeServerBin, runMain, type TestGateway, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, waitForStatus } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS, ENDLESS_GENERATION, engineBinPath } from "../helpers/llama_server.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { chatBody, expectError } from "../helpers/openai.ts";
import { keyed, type KeyedInit, overHttp } from "../helpers/requests.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

const skip = await engineAvailable();
const KEY = "sk-sy-e2e-streams-77b1";

interface Session {
  conversation_id: string;
  is_done: boolean;
  total_bytes: number;
  started_at: number;
  completed_at: number;
}

function send(gw: TestGateway, path: string, init: KeyedInit = {}): Promise<Response> {
  return overHttp(gw)(path, keyed({ key: KEY, ...init }));
}

/** A streamed chat for `model` that belongs to `conversation` (the web UI's header). */
function chat(
  gw: TestGateway,
  model: string,
  conversation: string,
  extra: Record<string, unknown> = { max_tokens: 12 },
  signal?: AbortSignal,
): Promise<Response> {
  const json = chatBody(model, { stream: true, ...extra });
  return send(gw, "/v1/chat/completions", {
    method: "POST",
    json,
    headers: { "X-Conversation-Id": conversation },
    signal,
  });
}

async function lookup(gw: TestGateway, ids: string[]): Promise<Session[]> {
  const res = await send(gw, "/v1/streams/lookup", { method: "POST", json: { conversation_ids: ids } });
  assertEquals(res.status, 200, "lookup");
  return await res.json();
}

const streamPath = (conversation: string, from?: number | string) =>
  `/v1/stream?conv_id=${encodeURIComponent(conversation)}${from === undefined ? "" : `&from=${from}`}`;

async function replay(gw: TestGateway, conversation: string, from?: number): Promise<Uint8Array> {
  const res = await send(gw, streamPath(conversation, from));
  assertEquals(res.status, 200, `replay of ${conversation}`);
  assertMatch(res.headers.get("content-type") ?? "", /text\/event-stream/);
  return new Uint8Array(await res.arrayBuffer());
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Reads `res` until its first SSE event has arrived; returns what came so far and the reader. */
async function firstEvent(res: Response) {
  const reader = res.body!.getReader();
  let seen = "";
  while (!seen.includes("\n\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the stream ended before its first event: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  return { seen, reader };
}

/** Reads to the end, failing (rather than hanging) should the stream never end. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, what: string): Promise<string> {
  let rest = "";
  const timer = setTimeout(() => reader.cancel(new Error(`${what} did not end`)), HANG_MS);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return rest;
      rest += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "resumable streams: stream with a conversation id, lookup, replay from an offset, stop",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const args = ["--api-key", KEY, "-c", "512", "-np", "2", ...ENDLESS_ENGINE_ARGS];
    await withGateway(["alpha", "beta"], { args }, async (gw) => {
      let streamed = new Uint8Array();
      await t.step("a streamed chat with a conversation id is buffered by its engine", async () => {
        const res = await chat(gw, "alpha", "conv-1");
        assertEquals(res.status, 200);
        streamed = new Uint8Array(await res.arrayBuffer());
        assert(text(streamed).trimEnd().endsWith("data: [DONE]"), text(streamed));
        const [session, ...more] = await lookup(gw, ["conv-1", "nobody"]);
        assertEquals(more, [], "only the conversation asked about");
        assertEquals([session.conversation_id, session.is_done, session.total_bytes], [
          "conv-1",
          true,
          streamed.length,
        ]);
        assert(session.completed_at >= session.started_at && session.started_at > 0, JSON.stringify(session));
      });

      await t.step("a replay gives the same bytes, from the start or from an offset", async () => {
        assertEquals(await replay(gw, "conv-1"), streamed);
        assertEquals(await replay(gw, "conv-1", 0), streamed);
        assertEquals(await replay(gw, "conv-1", 100), streamed.slice(100));
        assertEquals(await replay(gw, "conv-1", streamed.length), new Uint8Array(), "from the end");
        const bad = await send(gw, streamPath("conv-1", "abc"));
        await expectError(bad, 400, "a bad offset (the engine's answer)", { type: "invalid_request_error" });
      });

      await t.step("each model's conversations are found at their own engine", async () => {
        const res = await chat(gw, "beta", "conv-2::org/beta");
        assertEquals(res.status, 200);
        const bytes = new Uint8Array(await res.arrayBuffer());
        const found = await lookup(gw, ["conv-2::org/beta", "conv-1"]);
        assertEquals(found.map((s) => s.conversation_id).sort(), ["conv-1", "conv-2::org/beta"]);
        assertEquals(await replay(gw, "conv-2::org/beta"), bytes);
      });

      await t.step("a client that leaves mid-stream: the generation goes on into the buffer", async () => {
        const client = new AbortController();
        const res = await chat(gw, "alpha", "conv-3", { max_tokens: 200 }, client.signal);
        const { seen } = await firstEvent(res);
        client.abort();
        await waitFor(
          async () => (await lookup(gw, ["conv-3"]))[0]?.is_done === true,
          HANG_MS,
          "conv-3 done",
        );
        const whole = text(await replay(gw, "conv-3"));
        assert(whole.startsWith(seen), "the replay starts with what the client saw");
        assert(whole.trimEnd().endsWith("data: [DONE]"), "and goes on to the end");
      });

      await t.step("DELETE stops a live stream and forgets it", async () => {
        const res = await chat(gw, "beta", "conv-4", { ...ENDLESS_GENERATION });
        const { reader } = await firstEvent(res);
        const [live] = await lookup(gw, ["conv-4"]);
        assertEquals(live?.is_done, false, "still generating");
        const stop = await send(gw, streamPath("conv-4"), { method: "DELETE" });
        assertEquals([stop.status, await stop.text()], [204, ""]);
        await drain(reader, "the stopped stream");
        assertEquals(await lookup(gw, ["conv-4"]), []);
        await expectError(await send(gw, streamPath("conv-4")), 404, "replay of a stopped stream");
      });

      await t.step("DELETE of a finished stream: 204, then it is gone", async () => {
        const stop = await send(gw, streamPath("conv-1"), { method: "DELETE" });
        assertEquals(stop.status, 204);
        assertEquals(await lookup(gw, ["conv-1"]), []);
        const gone = await send(gw, streamPath("conv-1"));
        assertEquals(gone.status, 404);
        assertEquals((await gone.json()).error.message, "Stream not found or expired");
        await expectError(await send(gw, "/v1/stream"), 400, "no conversation id");
      });
    });
  },
});

/**
 * A `--server-bin` that starts the real engine only once the test writes a line to its gate (a FIFO):
 * until then the model is `loading`, for as long as the test needs.
 */
async function gatedEngine(): Promise<{ bin: string; open(): Promise<void>; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-gate-" });
  const gate = join(dir, "gate");
  const made = await new Deno.Command("mkfifo", { args: [gate] }).output();
  assert(made.success, "mkfifo");
  const { bin } = await fakeServerBin(`read _ < '${gate}'\nexec '${engineBinPath()}' "$@"`, dir);
  return {
    bin,
    dir,
    open: async () => {
      const fifo = await Deno.open(gate, { write: true });
      await fifo.write(new TextEncoder().encode("go\n"));
      fifo.close();
    },
  };
}

Deno.test({
  name: "resumable streams while the owner loads: retry later, a stop cancels, a client may leave",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gate = await gatedEngine();
    try {
      // no --api-key: waitForStatus polls /models without one
      const args = ["--server-bin", gate.bin, "-c", "512", "-np", "2"];
      await withGateway(["alpha"], { args }, async (gw) => {
        const stopped = chat(gw, "alpha", "conv-stop");
        const kept = chat(gw, "alpha", "conv-keep");
        const client = new AbortController();
        const left = chat(gw, "alpha", "conv-leave", { max_tokens: 12 }, client.signal).catch(() =>
          undefined
        );
        await waitForStatus(gw, "alpha", "loading");
        for (const conversation of ["conv-stop", "conv-keep", "conv-leave"]) {
          // each POST is registered as soon as the gateway has read it
          await waitFor(
            async () => {
              const res = await send(gw, streamPath(conversation));
              await res.body?.cancel();
              return res.status === 503;
            },
            HANG_MS,
            `${conversation}: retry later`,
          );
        }
        const retry = await send(gw, streamPath("conv-keep"));
        assertEquals((await retry.json()).error, {
          code: 503,
          message: "Stream owner model is loading, retry later",
          type: "unavailable_error",
        });
        assertEquals(await lookup(gw, ["conv-stop", "conv-keep", "conv-leave"]), [], "no engine to ask yet");

        client.abort();
        await left;
        const stop = await send(gw, streamPath("conv-stop"), { method: "DELETE" });
        assertEquals(stop.status, 204);
        const cancelled = await stopped;
        assertEquals(cancelled.status, 400);
        assertEquals(
          (await cancelled.json()).error.message,
          "request cancelled by a stop while the model was loading",
        );

        await gate.open();
        const res = await kept;
        assertEquals(res.status, 200);
        const bytes = new Uint8Array(await res.arrayBuffer());
        assertEquals(await replay(gw, "conv-keep"), bytes);
        // the page that sent conv-leave went away during the load; its answer waits for it
        await waitFor(
          async () => (await lookup(gw, ["conv-leave"]))[0]?.is_done === true,
          HANG_MS,
          "conv-leave",
        );
        assert(text(await replay(gw, "conv-leave")).trimEnd().endsWith("data: [DONE]"));
        assertEquals((await send(gw, streamPath("conv-stop"))).status, 404, "the stopped one never ran");
      });
    } finally {
      await Deno.remove(gate.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "tools and the CORS proxy: llama.cpp's own, served by the gateway when their flags are given",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const args = ["--api-key", KEY, "-c", "512", "--tools", "read_file,get_info", "--webui-mcp-proxy"];
    await withGateway(["alpha"], { args }, async (gw, dir) => {
      await t.step("GET /tools lists the tools asked for", async () => {
        const res = await send(gw, "/tools");
        assertEquals(res.status, 200);
        const tools: { tool: string; definition: { type: string } }[] = await res.json();
        assertEquals(tools.map((x) => x.tool).sort(), ["get_info", "read_file"]);
        assert(tools.every((x) => x.definition.type === "function"), JSON.stringify(tools));
        await expectError(await overHttp(gw)("/tools"), 401, "without a key");
      });

      await t.step("POST /tools runs one, in the gateway's working directory", async () => {
        const info = await send(gw, "/tools", { method: "POST", json: { tool: "get_info", params: {} } });
        assertEquals(info.status, 200);
        assertEquals((await info.json()).cwd, Deno.cwd());
        const file = join(dir, "note.txt");
        await Deno.writeTextFile(file, "written by the test\n");
        const read = await send(gw, "/tools", {
          method: "POST",
          json: { tool: "read_file", params: { path: file } },
        });
        assertEquals(read.status, 200);
        assertMatch(JSON.stringify(await read.json()), /written by the test/);
      });

      await t.step("its errors come in the error shape", async () => {
        const bad = await send(gw, "/tools", { method: "POST", body: "not json" });
        await expectError(bad, 400, "a body that is not JSON", {
          type: "invalid_request_error",
          exact: true,
        });
        const unknown = await send(gw, "/tools", { method: "POST", json: { tool: "exec_shell_command" } });
        await expectError(unknown, 404, "a tool not enabled", { exact: true });
      });

      await t.step("/cors-proxy relays to the URL given", async () => {
        const res = await send(gw, `/cors-proxy?url=${encodeURIComponent(`${gw.url}/health`)}`);
        assertEquals(res.status, 200);
        assertEquals(await res.json(), { status: "ok" });
        const props = await (await send(gw, "/props")).json();
        assertEquals(props.cors_proxy_enabled, true);
      });

      await t.step("engines get none of the feature flags", async () => {
        const res = await send(gw, "/v1/chat/completions", { method: "POST", json: chatBody("alpha") });
        assertEquals(res.status, 200);
        await res.body?.cancel();
        const list = await (await send(gw, "/models")).json();
        const argv: string[] = list.data.find((m: { id: string }) => m.id === "alpha").status.args;
        assert(!argv.some((a) => /tools|mcp-proxy/.test(a)), argv.join(" "));
      });
    });
  },
});

Deno.test({
  name: "tools: a bad --tools list stops the gateway at start-up with llama.cpp's message",
  ignore: !!skip,
  async fn() {
    const dir = await makeModelsDir(["alpha"]);
    try {
      const { code, out } = await runMain(["--models-dir", dir, "--port", "0", "--tools", "bogus"]);
      assertEquals(code, 1, out);
      assertMatch(out, /unknown tool "bogus"/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
