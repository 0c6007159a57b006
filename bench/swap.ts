/**
 * Swaps: `--models-max 1` for Switchyard and for llama.cpp's router, two models of different sizes and
 * requests alternating between them, so that every request evicts one model and loads the other. The floor,
 * (a), is the same by hand: SIGTERM to the running llama-server, its exit, the other one spawned, its answer.
 * Each sample is a 1-token answer on a new connection; samples go round-robin across the three systems, and
 * each waits until its system has finished stopping the evicted engine before the next one is measured.
 */
import { join } from "node:path";
import { writeTinyLlama } from "../tests/fixtures/gguf.ts";
import { startGateway, type TestGateway } from "../tests/helpers/gateway.ts";
import { waitFor } from "../tests/helpers/wait.ts";
import { spawnAnswering, waitUnloaded } from "./cold.ts";
import { encodeRequest, HttpConnection } from "./http_client.ts";
import { spread } from "./latency.ts";
import { type Server, spawnServer, waitHealthy } from "./procs.ts";
import type { Key, SwapResults } from "./results.ts";
import { expectOk, log, perSystem, type System } from "./systems.ts";
import { type StopTiming, stopTiming } from "./swap_log.ts";

const MiB = 1024 * 1024;

/** The two sizes of the issue's measurement; grown by their feed-forward width (real weights, no download). */
export const SWAP_MODELS: readonly { name: string; mib: number }[] = [
  { name: "swap-small", mib: 100 },
  { name: "swap-large", mib: 300 },
];
const ARCH = { seed: 7, nLayer: 4 };
/** unmeasured rounds first: each model loaded once everywhere */
const WARMUP_ROUNDS = 2;
/** how long the gateway may take to log a stop it already reports in GET /models */
const STOP_LOG_TIMEOUT_MS = 10_000;

const answerBody = (model: string) => ({ model, prompt: "hello", n_predict: 1 });

/** What the phase starts, so the bench stops it on error and on Ctrl-C too. */
export interface Owner {
  add(stop: () => Promise<unknown>): void;
  /** a folder whose name marks every process started on it (the bench kills leftovers by it) */
  addDir(dir: string): void;
}

export interface SwapSetup {
  bin: string;
  engineFlags: string[];
  gatewayArgs: string[];
  swaps: number;
}

/** (a): the running llama-server stopped, then the other one started on the request's model. */
class ByHand {
  #server: Server | undefined;

  constructor(readonly bin: string, readonly dir: string, readonly flags: string[]) {}

  async swap(model: string): Promise<number> {
    const t0 = performance.now();
    await this.#server?.stop();
    this.#server = undefined;
    const path = join(this.dir, `${model}.gguf`);
    const { server, ms } = await spawnAnswering(this.bin, path, this.flags, answerBody(model), t0);
    this.#server = server;
    return ms;
  }

  stop(): Promise<void> {
    return this.#server?.stop() ?? Promise.resolve();
  }
}

/** One answer through a router; resolves once `evicted` is unloaded there. `answeredAt`: epoch ms. */
async function routedSwap(
  sys: System,
  model: string,
  evicted: string,
): Promise<{ ms: number; answeredAt: number }> {
  const conn = new HttpConnection(sys.port);
  const t0 = performance.now();
  let done: number;
  try {
    const req = encodeRequest("POST", sys.port, "/completion", answerBody(model));
    expectOk(await conn.request(req, true), `swap to ${model} on ${sys.key}`);
    done = performance.now();
  } finally {
    conn.close();
  }
  await waitUnloaded(sys, evicted);
  return { ms: done - t0, answeredAt: performance.timeOrigin + done };
}

/** The gateway has logged `model`'s stop since line `from`. */
function stopLogged(gw: TestGateway, from: number, model: string): Promise<boolean> {
  const stopped = (line: string) => line.includes(` ${model} stopped (`);
  return waitFor(() => gw.logs.slice(from).some(stopped), STOP_LOG_TIMEOUT_MS, `${model} stopped in the log`)
    .then(() => true, () => false);
}

export async function measureSwap(setup: SwapSetup, owner: Owner): Promise<SwapResults<number>> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-bench-swap-" });
  owner.addDir(dir);
  log(`swap: writing ${SWAP_MODELS.map((m) => `${m.name} (${m.mib} MiB)`).join(" and ")}`);
  for (const m of SWAP_MODELS) {
    await writeTinyLlama(join(dir, `${m.name}.gguf`), { ...ARCH, padToBytes: m.mib * MiB });
  }
  const maxOne = ["--models-dir", dir, "--models-max", "1", ...setup.engineFlags];
  const byHand = new ByHand(setup.bin, dir, setup.engineFlags);
  owner.add(() => byHand.stop());
  const router = spawnServer(setup.bin, maxOne);
  owner.add(() => router.stop());
  const gw = await startGateway({
    args: [...maxOne, ...setup.gatewayArgs],
    env: { LLAMA_SERVER_BIN: setup.bin },
  });
  owner.add(() => gw.stop());
  try {
    await waitHealthy(`${router.url}/health`, router, 60_000);
    const routed: Record<"switchyard" | "router", System> = {
      switchyard: { key: "switchyard", port: Number(new URL(gw.url).port), url: gw.url, frontPid: gw.pid },
      router: { key: "router", port: router.port, url: router.url, frontPid: router.pid },
    };
    const answerMs = perSystem((): number[] => []);
    const stops: StopTiming[] = [];
    let stopsMissing = 0;
    // Switchyard's previous sample: where the log stood when it began, and when its answer came.
    let previous: { from: number; answeredAt: number } | undefined;
    const swapOn = async (key: Key, model: string, evicted: string): Promise<number> => {
      if (key === "direct") return await byHand.swap(model);
      if (key === "router") return (await routedSwap(routed.router, model, evicted)).ms;
      const from = gw.logs.length;
      const { ms, answeredAt } = await routedSwap(routed.switchyard, model, evicted);
      // Every stop counts, the warm-up's too: an engine's exit does not depend on what it was warm for.
      if (previous) {
        const logged = await stopLogged(gw, from, evicted);
        const timing = logged ? stopTiming(gw.logs.slice(previous.from), evicted, previous.answeredAt) : null;
        if (timing) stops.push(timing);
        else stopsMissing++;
      }
      previous = { from, answeredAt };
      return ms;
    };
    const keys: Key[] = ["direct", "switchyard", "router"];
    log(`swap: ${setup.swaps} swaps per system (after ${WARMUP_ROUNDS} unmeasured), interleaved`);
    for (let round = 0; round < WARMUP_ROUNDS + setup.swaps; round++) {
      const model = SWAP_MODELS[round % 2].name;
      const evicted = SWAP_MODELS[(round + 1) % 2].name;
      for (let j = 0; j < keys.length; j++) {
        const key = keys[(round + j) % keys.length];
        const ms = await swapOn(key, model, evicted);
        if (round >= WARMUP_ROUNDS) answerMs[key].push(ms);
      }
    }
    if (stopsMissing) log(`swap: ${stopsMissing} of Switchyard's stops lacked a log line they need`);
    const results: SwapResults<number> = {
      models: [...SWAP_MODELS],
      answerMs: perSystem((k) => spread(answerMs[k])),
      switchyardStop: {
        stops: stops.length + stopsMissing,
        evictToStoppedMs: spread(stops.flatMap((s) => s.evictToStoppedMs ?? [])),
        engineExitMs: spread(stops.map((s) => s.engineExitMs)),
        reportedMs: spread(stops.map((s) => s.reportedMs)),
        exitCommandToStoppedMs: spread(stops.map((s) => s.exitCommandToStoppedMs)),
      },
    };
    for (const k of keys) {
      const s = results.answerMs[k];
      log(`  ${k}: evict + load + 1-token answer p50 ${s.p50.toFixed(1)} ms, p90 ${s.p90.toFixed(1)} ms`);
    }
    const st = results.switchyardStop;
    log(
      `  switchyard stops (p50): evicting → stopped ${st.evictToStoppedMs.p50.toFixed(1)} ms; ` +
        `engine exit ${st.engineExitMs.p50.toFixed(1)} ms, then reported in ` +
        `${st.reportedMs.p50.toFixed(1)} ms (exit command → stopped ${
          st.exitCommandToStoppedMs.p50.toFixed(1)
        } ms)`,
    );
    return results;
  } finally {
    await Promise.allSettled([byHand.stop(), gw.stop(), router.stop()]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
