/**
 * The runner lifecycle against the real llama-server and a tiny generated model: readiness and
 * progress come from llama-server's own child protocol, stop is graceful, sleep and wake-up are
 * reported, and nothing is left behind. Skipped, with the reason, when the engine binary or the GGUF
 * writer is missing.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { resolveEngine } from "../../router/engine/binary.ts";
import { isAlive } from "../../runners/lifeline.ts";
import type { EngineLaunch, RunnerMessage } from "../../runners/protocol.ts";
import { RunnerPool } from "../../runners/supervisor.ts";
import { statusKiB } from "../helpers/processes.ts";
import { delay, HANG_MS, waitFor } from "../helpers/wait.ts";

type WriteTinyLlama = (path: string, opts?: Record<string, unknown>) => Promise<void>;

async function prerequisites(): Promise<{ bin: string; writeTinyLlama: WriteTinyLlama } | string> {
  let bin: string;
  try {
    bin = await resolveEngine({ env: Deno.env.toObject(), build: false });
  } catch (error) {
    return `no llama-server (${(error as Error).message}); run \`deno task engine\``;
  }
  try {
    const gguf = await import("../fixtures/gguf.ts");
    return { bin, writeTinyLlama: gguf.writeTinyLlama as WriteTinyLlama };
  } catch (error) {
    return `no GGUF writer at tests/fixtures/gguf.ts (${(error as Error).message})`;
  }
}

/**
 * Lets the spare runner finish starting (its hello, its warm-up spawn), as in a gateway that has been up
 * a while. Only the printed numbers depend on it, never a verdict.
 */
const settleForMeasurement = () => delay(300);

/** A stop that must end gracefully: the SIGKILL it falls back to must never come first on a slow machine. */
const GRACEFUL_MS = HANG_MS;

const ready = await prerequisites();
if (typeof ready === "string") console.error(`runner_engine_test: skipped: ${ready}`);

function recorder() {
  const messages: { at: number; message: RunnerMessage }[] = [];
  return {
    messages,
    onMessage: (message: RunnerMessage) => messages.push({ at: performance.now(), message }),
    count: (type: RunnerMessage["type"]) => messages.filter((m) => m.message.type === type).length,
    at: (type: RunnerMessage["type"], nth = 0) => messages.filter((m) => m.message.type === type)[nth]?.at,
    logs: () =>
      messages.flatMap((m) => m.message.type === "log" ? [m.message.line] : []).slice(-40).join("\n"),
  };
}

function memory(pid: number): { rss: number; anon: number } {
  return { rss: statusKiB(pid, "VmRSS") / 1024, anon: statusKiB(pid, "RssAnon") / 1024 };
}

interface Setup {
  /** llama-server on the tiny model, with `-c 512 --no-webui` and `args` */
  launch(args?: string[]): EngineLaunch;
  pool: RunnerPool;
  /** pids that must all be gone at the end */
  seen: number[];
}

/**
 * A test with a tiny model and a pool with one spare runner, both gone at the end, and then no runner or
 * engine in `seen` left. Skipped when the prerequisites are missing.
 */
function runnerTest(name: string, body: (setup: Setup) => Promise<void>): void {
  Deno.test({
    name,
    ignore: typeof ready === "string",
    async fn() {
      if (typeof ready === "string") return;
      const dir = await Deno.makeTempDir({ prefix: "switchyard-runner-" });
      const model = `${dir}/tiny.gguf`;
      await ready.writeTinyLlama(model);
      const pool = new RunnerPool({ spares: 1 });
      const seen: number[] = [];
      try {
        const { bin } = ready;
        const launch = (args: string[] = []) => ({
          bin,
          args: ["-m", model, "-c", "512", "--no-webui", ...args],
          env: {},
        });
        await body({ launch, pool, seen });
      } finally {
        await pool.shutdown();
        await Deno.remove(dir, { recursive: true });
      }
      await waitFor(() => seen.every((pid) => !isAlive(pid)), HANG_MS, "no runner or engine left");
    },
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

runnerTest(
  "runner + llama-server: spare start, progress, ready, serve, sleep, wake, graceful stop",
  async ({ launch, pool, seen }) => {
    await waitFor(() => pool.live().runners.length === 1, HANG_MS, "spare runner");
    await settleForMeasurement();
    const spareRss = memory(pool.live().runners[0]);
    const rec = recorder();
    const t0 = performance.now();
    const runner = pool.start(launch(["--alias", "tiny", "--sleep-idle-seconds", "1"]), rec.onMessage);
    const port = await runner.port;
    await waitFor(() => rec.count("ready") === 1, HANG_MS, `ready; log:\n${rec.logs()}`);
    seen.push(runner.pid, runner.enginePid!);
    const first = rec.messages.find((m) => m.message.type === "ready")!.message as {
      info: { id?: string };
    };
    assertEquals(first.info.id, "tiny");
    assert(rec.count("progress") >= 1, "loading progress before ready");
    console.log(
      `  spare runner: start→spawned ${(rec.at("spawned")! - t0).toFixed(1)} ms, ` +
        `start→first progress ${(rec.at("progress")! - t0).toFixed(1)} ms, ` +
        `start→ready ${(rec.at("ready")! - t0).toFixed(1)} ms`,
    );

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assertEquals(health.status, 200);
    await health.body?.cancel();
    const busyRss = memory(runner.pid);
    const engineRss = memory(runner.enginePid!);
    console.log(
      `  runner VmRSS idle ${spareRss.rss.toFixed(1)} MiB (anon ${spareRss.anon.toFixed(1)}), driving ` +
        `${busyRss.rss.toFixed(1)} MiB (anon ${busyRss.anon.toFixed(1)}); llama-server ${
          engineRss.rss.toFixed(1)
        } MiB`,
    );

    // --sleep-idle-seconds 1: the engine frees its weights and says so; a request wakes it.
    await waitFor(() => rec.count("sleeping") === 1, HANG_MS, "sleeping");
    const progressBefore = rec.count("progress");
    const completion = await fetch(`http://127.0.0.1:${port}/completion`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "hello", n_predict: 4 }),
    });
    assertEquals(completion.status, 200);
    await completion.body?.cancel();
    await waitFor(() => rec.count("ready") === 2, HANG_MS, "ready after wake-up");
    const wake = rec.messages.filter((m) => m.message.type === "ready")[1].message;
    assertEquals(wake, { type: "ready", info: {} });
    assert(rec.count("progress") > progressBefore, "progress while waking up");

    const enginePid = runner.enginePid!;
    await runner.stop(GRACEFUL_MS);
    assertEquals(await runner.exited, { code: 0, signal: null });
    assert(!isAlive(enginePid), "engine gone after stop");
    assert(rec.logs().length > 0);
  },
);

runnerTest(
  "runner + llama-server: start latency over 5 loads; SIGKILLed runner takes the engine along",
  async ({ launch, pool, seen }) => {
    const spawned: number[] = [];
    const readyMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      // a gateway up for a while has its spare waiting
      await waitFor(
        () => pool.live().runners.length >= 1 && pool.live().engines.length === 0,
        HANG_MS,
        "spare",
      );
      await settleForMeasurement();
      const rec = recorder();
      const t0 = performance.now();
      const runner = pool.start(launch(), rec.onMessage);
      await waitFor(() => rec.count("ready") === 1, HANG_MS, `ready; log:\n${rec.logs()}`);
      spawned.push(rec.at("spawned")! - t0);
      readyMs.push(rec.at("ready")! - t0);
      seen.push(runner.pid, runner.enginePid!);
      if (i < 4) {
        await runner.stop(GRACEFUL_MS);
        continue;
      }
      const enginePid = runner.enginePid!;
      Deno.kill(runner.pid, "SIGKILL");
      assertEquals((await runner.exited).signal, "SIGKILL");
      // the README's 5 s: the kernel's parent-death signal kills the engine, whatever the machine's speed
      await waitFor(() => !isAlive(enginePid), 5_000, "engine dies with its runner");
    }
    console.log(
      `  5 loads via spare: start→spawned median ${median(spawned).toFixed(1)} ms ` +
        `[${spawned.map((x) => x.toFixed(0)).join(", ")}], start→ready median ${
          median(readyMs).toFixed(1)
        } ms ` +
        `[${readyMs.map((x) => x.toFixed(0)).join(", ")}]`,
    );
  },
);

runnerTest(
  "runner + llama-server: a stop right after ready still ends gracefully (lost exit line is nudged)",
  async ({ launch, pool }) => {
    const exits: { code: number; signal: string | null; ms: number }[] = [];
    for (let i = 0; i < 12; i++) {
      let readyAt = 0;
      const runner = pool.start(launch(), (m) => {
        if (m.type !== "ready") return;
        readyAt = performance.now();
        runner.stop(GRACEFUL_MS);
      });
      const exit = await runner.exited;
      exits.push({ ...exit, ms: performance.now() - readyAt });
    }
    const slow = exits.filter((e) => e.ms > 500).length;
    console.log(
      `  12 stops right after ready: ${slow} needed the SIGTERM nudge; all exit codes ${
        exits.map((e) => e.code)
      }`,
    );
    // graceful every time, so before the SIGKILL due after GRACEFUL_MS; how soon depends on the machine
    assert(exits.every((e) => e.code === 0 && e.signal === null), JSON.stringify(exits));
  },
);

runnerTest(
  "runner + llama-server at -lv 4: the load's buffer lines always pass; the serving trace only when asked for",
  async ({ launch, pool, seen }) => {
    const streamed = async (port: number, prompt: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/completion`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt, n_predict: 8, stream: true }),
      });
      assertEquals(res.status, 200);
      await res.text();
    };
    const seenLines = async (dropServingTrace: boolean) => {
      const lines: { line: string; afterReady: boolean }[] = [];
      let isReady = false;
      const base = launch(["-lv", "4", "--log-prefix", "--log-timestamps", "-np", "2"]);
      const runner = pool.start({ ...base, dropServingTrace }, (m) => {
        if (m.type === "ready") isReady = true;
        const got = m.type === "log" ? [m.line] : m.type === "logs" ? m.lines : [];
        for (const line of got) lines.push({ line, afterReady: isReady });
      });
      const port = await runner.port;
      await waitFor(() => isReady, HANG_MS, "ready");
      seen.push(runner.pid, runner.enginePid!);
      // two requests, so the second finds the first's prompt in the prompt cache and traces it
      for (const prompt of ["hello there", "hello there again"]) await streamed(port, prompt);
      // each request's last line is an INFO line, kept either way: once two are in, both have been relayed
      await waitFor(
        () => lines.filter((l) => l.line.includes("stop processing")).length === 2,
        HANG_MS,
        "both requests' 'stop processing' lines",
      );
      await runner.stop(GRACEFUL_MS);
      await runner.exited;
      return lines;
    };
    const trace = /prompt cache update took|sampler params:|saving idle slot|- skipping, slot is empty/;
    for (const drop of [true, false]) {
      const lines = await seenLines(drop);
      const buffers = lines.filter((l) => !l.afterReady && /buffer size\s*=/.test(l.line));
      assert(buffers.length > 0, "the load's buffer lines, which the memory observation reads");
      const traced = lines.filter((l) => l.afterReady && trace.test(l.line)).map((l) => l.line);
      const continued = lines.filter((l) => l.afterReady && l.line.startsWith("\t")).length;
      if (drop) {
        assertEquals(traced, []);
        assertEquals(continued, 0, "the sampler settings under 'sampler params:' went with it");
      } else {
        assert(traced.length >= 4, `the engine's trace passes when it was asked for: ${traced.length} lines`);
        assert(continued > 0, "the sampler settings under 'sampler params:'");
      }
      console.log(
        `  dropServingTrace ${drop}: ${lines.filter((l) => l.afterReady).length} lines after ready`,
      );
    }
  },
);
