/**
 * Reliability, end to end: real gateways, real llama-server engines on tiny models, and processes
 * killed under them. Engines that die mid-stream, runners that die, a gateway that is SIGKILLed or
 * SIGTERMed mid-request, a burst of mixed requests under `--models-max`, a crash loop, a hung engine
 * and orphans left by an earlier gateway.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeModelsDir } from "../helpers/models.ts";
import {
  fakeServerBin,
  type GatewaySetup,
  isolatedEnv,
  startGateway,
  type TestGateway,
  withGateway,
} from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson, postJsonWith, waitForStatus } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS, ENDLESS_GENERATION } from "../helpers/llama_server.ts";
import { assertErrorBody, chatBody, readSse } from "../helpers/openai.ts";
import {
  engineOf,
  enginesOf,
  enginesWith,
  ppidOf,
  processesWith,
  readProc,
  runnersOf,
} from "../helpers/processes.ts";
import { delay, HANG_MS, waitFor, within } from "../helpers/wait.ts";
import { isAlive } from "../../runners/lifeline.ts";

const skip = await engineAvailable();

interface ModelEntry {
  id: string;
  status: {
    value: string;
    failed?: boolean;
    exit_code?: number;
    error?: string;
    args: string[];
    stopping?: boolean;
  };
}

async function entry(gw: TestGateway, id: string): Promise<ModelEntry> {
  const list = await getJson(gw, "/models");
  return list.data.find((m: ModelEntry) => m.id === id);
}

const base = { ignore: !!skip, sanitizeResources: false, sanitizeOps: false };

/** `args` for `withGateway`, and no process naming a path under the models dir left at the end. */
const inDir = (args: string[]) => (dir: string): GatewaySetup => ({ args, marker: `${dir}/` });

/**
 * What the README promises for a SIGKILLed runner or gateway: no engine left within 5 s. The kernel's
 * parent-death signal does the killing (runners/lifeline.ts), so this bound is not one on the machine's
 * speed; every other wait here only bounds a hang.
 */
const ORPHAN_FREE_MS = 5_000;

// ---- 1. an engine SIGKILLed mid-stream ---------------------------------------------------------------

Deno.test({
  ...base,
  name: "an engine killed mid-stream: the stream ends with an error event, the model is failed, then reloads",
  fn: () =>
    withGateway(["alpha", "beta"], inDir(["-np", "1", ...ENDLESS_ENGINE_ARGS]), async (gw, dir) => {
      assertEquals((await postJson(gw, "/tokenize", { model: "beta", content: "x" })).status, 200);
      const betaPid = engineOf(join(dir, "beta.gguf"));
      // a generation that never ends by itself: the kill always lands mid-stream, and the stream can only
      // end because the gateway noticed the engine die
      const res = await postJsonWith(
        gw,
        "/v1/chat/completions",
        chatBody("alpha", { ...ENDLESS_GENERATION, stream: true }),
        { signal: AbortSignal.timeout(HANG_MS) },
      );
      assertEquals(res.status, 200);
      const alphaPid = engineOf(join(dir, "alpha.gguf"));
      let killed = false;
      const events = await readSse(res, (n) => {
        if (n >= 3 && !killed) {
          killed = true;
          Deno.kill(alphaPid, "SIGKILL");
        }
      });
      assert(killed, "the stream produced chunks before the kill");
      const last = events.at(-1)!;
      assert(last !== "[DONE]", "the stream did not finish normally");
      const final = JSON.parse(last);
      assertErrorBody(final, final?.error?.code, "final SSE event");
      assertMatch(final.error.message, /alpha/);

      await waitForStatus(gw, "alpha", "unloaded");
      const alpha = await entry(gw, "alpha");
      assertEquals(alpha.status.failed, true);
      assertEquals(typeof alpha.status.exit_code, "number");
      assert(alpha.status.exit_code !== 0, `exit code ${alpha.status.exit_code}`);
      assertMatch(alpha.status.error ?? "", /last log lines:\n./);

      const again = await postJson(gw, "/v1/chat/completions", chatBody("alpha"));
      assertEquals(again.status, 200, "the next request reloads the model");
      assertEquals((await again.json()).object, "chat.completion");
      assertEquals((await entry(gw, "alpha")).status.failed, undefined, "a good load clears `failed`");
      assertEquals(engineOf(join(dir, "beta.gguf")), betaPid, "the other model's engine is untouched");
      assertEquals((await entry(gw, "beta")).status.value, "loaded");
    }),
});

// ---- 2. a runner SIGKILLed ---------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "a runner killed: its engine is gone within 5 s, the model is failed, the next request works",
  fn: () =>
    withGateway(["alpha"], inDir(["-c", "256", "-np", "1"]), async (gw, dir) => {
      assertEquals((await postJson(gw, "/tokenize", { model: "alpha", content: "x" })).status, 200);
      const enginePid = engineOf(join(dir, "alpha.gguf"));
      const runnerPid = ppidOf(enginePid);
      assert(runnersOf(gw.pid).includes(runnerPid), `engine ${enginePid}'s parent ${runnerPid} is a runner`);
      Deno.kill(runnerPid, "SIGKILL");
      await waitFor(() => !isAlive(enginePid), ORPHAN_FREE_MS, "the engine died with its runner");
      await waitForStatus(gw, "alpha", "unloaded");
      const alpha = await entry(gw, "alpha");
      assertEquals(alpha.status.failed, true, JSON.stringify(alpha.status));
      assert(alpha.status.exit_code !== 0);
      const res = await postJson(gw, "/v1/chat/completions", chatBody("alpha"));
      assertEquals(res.status, 200);
      await res.body?.cancel();
      assert(engineOf(join(dir, "alpha.gguf")) !== enginePid, "a fresh engine serves it");
    }),
});

// ---- 3. the gateway SIGKILLed ------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "a gateway killed with SIGKILL leaves no runner and no engine within 5 s",
  async fn() {
    const dir = await makeModelsDir(["alpha", "beta"]);
    const gw = await startGateway({
      args: ["--models-dir", dir, "-c", "256", "-np", "1"],
      env: await isolatedEnv(),
    });
    let killed = false;
    try {
      for (const model of ["alpha", "beta"]) {
        assertEquals((await postJson(gw, "/tokenize", { model, content: "x" })).status, 200);
      }
      const engines = enginesOf(gw.pid);
      const runners = runnersOf(gw.pid);
      assertEquals(engines.length, 2, `engines: ${engines}`);
      assert(runners.length >= 2, `runners (spares included): ${runners}`);
      Deno.kill(gw.pid, "SIGKILL");
      killed = true;
      await gw.status;
      await waitFor(
        () =>
          [...engines, ...runners].every((pid) => !isAlive(pid)) && enginesOf(gw.pid).length === 0 &&
          processesWith(`${dir}/`).length === 0,
        ORPHAN_FREE_MS,
        "every runner and engine of the killed gateway is gone",
      );
    } finally {
      if (!killed) await gw.stop();
      // never leave a process of ours behind, even if the assertion above failed
      for (const pid of [...enginesOf(gw.pid), ...processesWith(`${dir}/`)]) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- 4. SIGTERM during a streaming request -----------------------------------------------------------

Deno.test({
  ...base,
  name: "SIGTERM during a streaming request: the request completes, the gateway exits 0, no engine is left",
  async fn() {
    const dir = await makeModelsDir(["alpha"]);
    // a stop-timeout no machine's 300 tokens come near: the default 10 s could cut a slow one short
    const preset = join(dir, "preset.ini");
    await Deno.writeTextFile(preset, "[*]\nstop-timeout = 600\n");
    const gw = await startGateway({
      args: ["--models-dir", dir, "--models-preset", preset, "-c", "1024", "-np", "1"],
      env: await isolatedEnv(),
    });
    let stopped = false;
    let engine: number | undefined;
    try {
      const res = await postJsonWith(
        gw,
        "/v1/chat/completions",
        chatBody("alpha", { max_tokens: 300, stream: true, ignore_eos: true }),
        { signal: AbortSignal.timeout(HANG_MS) },
      );
      assertEquals(res.status, 200);
      engine = engineOf(join(dir, "alpha.gguf"));
      const frozen = engine;
      let heard: Promise<string> | undefined;
      const events = await readSse(res, (n) => {
        if (n !== 2) return;
        // The engine is frozen before the gateway gets SIGTERM and thawed once it has said so: the answer
        // is still being generated when the stop begins, however fast the engine is.
        Deno.kill(frozen, "SIGSTOP");
        Deno.kill(gw.pid, "SIGTERM");
        heard = gw.waitForLog(/SIGTERM: stopping/).finally(() => Deno.kill(frozen, "SIGCONT"));
      });
      assert(heard, "the stream produced chunks before the SIGTERM");
      await heard;
      assertEquals(events.at(-1), "[DONE]", `the stream finished normally: ${events.slice(-2).join(" | ")}`);
      const chunks = events.filter((e) => e !== "[DONE]").map((e) => JSON.parse(e));
      assert(chunks.every((c) => !c.error), "no error event");
      assert(chunks.length > 100, `the whole answer came through (${chunks.length} chunks)`);
      const status = await within(gw.status, "the gateway exiting after the request");
      stopped = true;
      assertEquals(status.code, 0, `exit code; log tail:\n${gw.logs.slice(-15).join("\n")}`);
      await waitFor(() => enginesOf(gw.pid).length === 0, HANG_MS, "no engine left");
      assertEquals(processesWith(`${dir}/`), []);
    } finally {
      // a failed assertion must not leave the engine frozen, waiting out the stop-timeout
      if (engine !== undefined) {
        try {
          Deno.kill(engine, "SIGCONT");
        } catch { /* gone */ }
      }
      if (!stopped) await gw.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- 5. 200 concurrent mixed requests under --models-max 2 -------------------------------------------

Deno.test({
  ...base,
  name:
    "200 concurrent mixed requests over 6 models with --models-max 2: never more than 2 models loading or " +
    "loaded, 4 engines with those stopping, no hang",
  async fn() {
    const models = ["m0", "m1", "m2", "m3", "m4", "m5"];
    await withGateway(models, inDir(["--models-max", "2", "-c", "256", "-np", "1"]), async (gw, dir) => {
      let sampling = true;
      let maxEngines = 0, maxAlive = 0, samples = 0, polls = 0;
      // Engines are counted on a timer and after every answer: however fast or slow the run, that is at
      // least 200 counts spread over it.
      const countEngines = () => {
        maxEngines = Math.max(maxEngines, enginesWith(`${dir}/`).length, enginesOf(gw.pid).length);
        samples++;
      };
      const sampler = (async () => {
        while (sampling) {
          countEngines();
          try {
            const list = await getJson(gw, "/models");
            const alive = list.data.filter((m: ModelEntry) =>
              ["loading", "loaded", "sleeping"].includes(m.status.value) && !m.status.stopping
            ).length;
            maxAlive = Math.max(maxAlive, alive);
            polls++;
          } catch { /* counted by the request tally if the gateway misbehaves */ }
          await delay(50);
        }
      })();
      try {
        const kinds = ["chat", "stream", "completion", "tokenize"] as const;
        const requests = Array.from({ length: 200 }, (_, i) => {
          const bad = i % 10 === 7;
          const model = bad ? `no-such-model-${i}` : models[(i * 7) % models.length];
          const kind = kinds[i % kinds.length];
          const [path, body] = kind === "chat"
            ? ["/v1/chat/completions", chatBody(model)]
            : kind === "stream"
            ? ["/v1/chat/completions", chatBody(model, { stream: true })]
            : kind === "completion"
            ? ["/completion", { model, prompt: "hello", n_predict: 4 }]
            : ["/tokenize", { model, content: "hello world" }];
          return { i, bad, kind, model, path, body };
        });
        const started = performance.now();
        const outcomes = await Promise.all(requests.map(async (r) => {
          try {
            // every request is sent at once and waits its turn: the bound on a hang is one on the whole
            // burst, which takes a minute on a busy two-core machine
            const res = await postJsonWith(gw, r.path, r.body, { signal: AbortSignal.timeout(10 * HANG_MS) });
            const text = await res.text();
            countEngines();
            let ok: string | undefined;
            if (res.status === 200 && r.kind === "stream") {
              const events = text.split("\n").filter((l) => l.startsWith("data: "));
              if (events.at(-1) !== "data: [DONE]") {
                ok = `stream did not end with [DONE]: ${text.slice(-200)}`;
              }
            } else {
              try {
                const json = JSON.parse(text);
                if (res.status !== 200) assertErrorBody(json, res.status, `${r.path} ${r.model}`);
              } catch (err) {
                ok = `bad body: ${(err as Error).message}: ${text.slice(0, 200)}`;
              }
            }
            return { ...r, status: res.status, problem: ok, text: text.slice(0, 300) };
          } catch (err) {
            return { ...r, status: 0, problem: `no answer: ${(err as Error).message}`, text: "" };
          }
        }));
        const elapsed = performance.now() - started;
        sampling = false;
        await sampler;

        const tally: Record<string, number> = {};
        for (const o of outcomes) {
          const key = `${o.bad ? "unknown" : "known"} ${o.kind} ${o.status}`;
          tally[key] = (tally[key] ?? 0) + 1;
        }
        console.log(
          `  200 requests in ${Math.round(elapsed)} ms; ${samples} engine counts and ${polls} /models ` +
            `polls, at most ${maxEngines} engines ` +
            `and ${maxAlive} alive models; tally ${JSON.stringify(tally)}`,
        );
        const problems = outcomes.filter((o) => o.problem);
        assertEquals(problems.map((o) => `${o.i} ${o.path} ${o.model}: ${o.problem}`), []);
        const wrong = outcomes.filter((o) => o.status !== (o.bad ? 400 : 200));
        assertEquals(wrong.map((o) => `${o.i} ${o.kind} ${o.model}: ${o.status} ${o.text}`), []);
        assert(samples >= 200 && polls > 0, `the samplers ran (${samples} counts, ${polls} polls)`);
        // an evicted engine gives its place up as its stop begins; at most the cap's worth overlap
        assert(maxEngines <= 4, `at most 4 engines at once (2 and 2 stopping), saw ${maxEngines}`);
        assert(maxAlive <= 2, `at most 2 models loading or loaded at once, saw ${maxAlive}`);
      } finally {
        sampling = false;
        await sampler;
      }
    });
  },
});

// ---- 6. crash-loop cap -------------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "crash-loop cap: failures give 500 with the log, then 503 until an explicit load, which is attempted",
  async fn() {
    const fake = await fakeServerBin(`echo "fake engine: refusing to start ($*)" >&2\nexit 1`);
    const setup = { args: ["--server-bin", fake.bin, "--max-crashes", "2"], marker: fake.bin };
    try {
      await withGateway(["alpha"], setup, async (gw) => {
        const loads = () => gw.logs.filter((l) => /\bloading alpha\b/.test(l)).length;
        const exits = () => gw.logs.filter((l) => /\balpha exited \(code 1\)/.test(l)).length;
        for (let attempt = 1; attempt <= 2; attempt++) {
          const res = await postJson(gw, "/v1/chat/completions", chatBody("alpha"));
          const body = await res.json();
          assertEquals(res.status, 500, `attempt ${attempt}: ${JSON.stringify(body)}`);
          assertErrorBody(body, 500, `attempt ${attempt}`);
          assertMatch(body.error.message, /failed to load/);
          assertMatch(body.error.message, /fake engine: refusing to start/, "the engine's log lines");
          assertEquals(loads(), attempt);
        }
        const capped = await postJson(gw, "/v1/chat/completions", chatBody("alpha"));
        const cappedBody = await capped.json();
        assertEquals(capped.status, 503, JSON.stringify(cappedBody));
        assertErrorBody(cappedBody, 503, "capped");
        assertMatch(cappedBody.error.message, /POST \/models\/load/);
        assertMatch(cappedBody.error.message, /fake engine: refusing to start/);
        assertEquals(loads(), 2, "no load was attempted past the cap");
        const entryNow = await entry(gw, "alpha");
        assertEquals(entryNow.status.failed, true);
        assertEquals(entryNow.status.exit_code, 1);

        const load = await postJson(gw, "/models/load", { model: "alpha" });
        assertEquals(load.status, 200);
        assertEquals(await load.json(), { success: true });
        await waitFor(
          () => loads() === 3 && exits() === 3,
          HANG_MS,
          "the explicit load was attempted and failed",
        );
        await waitForStatus(gw, "alpha", "unloaded");
        assertEquals((await entry(gw, "alpha")).status.failed, true);
        const after = await postJson(gw, "/v1/chat/completions", chatBody("alpha"));
        assertEquals(after.status, 500, "the count was reset: the model is attempted again, not refused");
        await after.body?.cancel();
        assertEquals(loads(), 4);
      });
    } finally {
      await Deno.remove(fake.dir, { recursive: true });
    }
  },
});

// ---- 7. hung engine ----------------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "a hung engine is killed after --load-silence-timeout and the request fails with a clear error",
  async fn() {
    const marker = String(4000 + Math.floor(Math.random() * 1000));
    const fake = await fakeServerBin(`echo "fake engine: loading forever"\nexec sleep ${marker}`);
    const setup = {
      args: ["--server-bin", fake.bin, "--load-silence-timeout", "2"],
      marker: `sleep ${marker}`,
    };
    try {
      await withGateway(["alpha"], setup, async (gw) => {
        const hung = () => enginesOf(gw.pid).filter((pid) => readProc(pid, "cmdline").includes(marker));
        const started = performance.now();
        const res = await postJsonWith(gw, "/v1/chat/completions", chatBody("alpha"), {
          signal: AbortSignal.timeout(HANG_MS),
        });
        const elapsed = performance.now() - started;
        const body = await res.json();
        assertEquals(res.status, 500, JSON.stringify(body));
        assertErrorBody(body, 500, "hung load");
        assertMatch(body.error.message, /looks hung/);
        // a lower bound only: the engine is silent from its first line on, so the gateway cannot give up
        // sooner; how much later it does depends on the machine
        assert(elapsed >= 2_000, `failed after ${Math.round(elapsed)} ms, before 2 s of silence`);
        await waitFor(() => hung().length === 0, HANG_MS, "the hung process is gone");
        assertEquals(processesWith(`sleep ${marker}`), []);
        assertEquals((await entry(gw, "alpha")).status.failed, true);
      });
    } finally {
      await Deno.remove(fake.dir, { recursive: true });
    }
  },
});

// ---- 8. orphans of an earlier gateway ----------------------------------------------------------------

Deno.test({
  ...base,
  name: "a process left by a dead gateway (SWITCHYARD_GATEWAY_PID of a gone pid) is killed at start-up",
  async fn() {
    const deadPid = 999999; // above the usual pid_max (32768 or 4194304 on 64-bit): no such process
    assert(!isAlive(deadPid));
    const orphan = new Deno.Command("sleep", {
      args: ["300"],
      env: { SWITCHYARD_GATEWAY_PID: String(deadPid) },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await withGateway(["alpha"], inDir([]), async (gw) => {
        // the gateway kills orphans before it listens: by now the kill has been sent
        const status = await within(orphan.status, "the orphan killed at start-up");
        assertEquals(status.signal, "SIGKILL");
        const line = await gw.waitForLog(/engines left by an earlier gateway/);
        assertMatch(line, new RegExp(`pids .*\\b${orphan.pid}\\b`));
      });
    } finally {
      try {
        orphan.kill("SIGKILL");
      } catch { /* already killed */ }
      await orphan.status;
    }
  },
});

// ---- 9. SIGTERM right after start-up -----------------------------------------------------------------

Deno.test({
  ...base,
  name: "SIGTERM right after the gateway logs 'listening' stops it gracefully (exit 0)",
  async fn() {
    const dir = await makeModelsDir(["alpha"]);
    const codes: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const gw = await startGateway({ args: ["--models-dir", dir], env: await isolatedEnv() });
        codes.push(await gw.stop());
        await waitFor(() => enginesOf(gw.pid).length === 0, HANG_MS, "no engine left");
      }
      // signals are handled from the first moment, also while the gateway is still starting
      assertEquals(codes, [0, 0, 0, 0, 0], "exit codes of gateways stopped right after 'listening'");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
