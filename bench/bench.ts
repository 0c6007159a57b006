/**
 * `deno task bench`: Switchyard against llama-server alone and against llama.cpp's own router mode, on one
 * tiny model, in one run. Prints a Markdown table and writes `bench/results/latest.{json,md}`.
 *
 *   (a) direct      `llama-server -m tiny.gguf FLAGS`                 the floor: no proxy at all
 *   (b) Switchyard  `main.ts --models-dir DIR FLAGS`                  gateway → runner → llama-server
 *   (c) llama.cpp   `llama-server --models-dir DIR FLAGS`             the router Switchyard replaces
 *
 * All three run at once, idle while another is measured; latency samples are interleaved round-robin so
 * that background load on the machine hits all three alike. Options: `--help` (options.ts).
 */
import { join } from "node:path";
import { resolveEngine } from "../router/engine/binary.ts";
import { makeModelsDir } from "../tests/helpers/models.ts";
import { startGateway } from "../tests/helpers/gateway.ts";
import { coldDirect, coldRouted } from "./cold.ts";
import { encodeRequest } from "./http_client.ts";
import { dist, interleaved } from "./latency.ts";
import {
  type BenchOptions,
  type LoadClient,
  parseArgs,
  type Phase,
  samplesFor,
  USAGE,
  UsageError,
} from "./options.ts";
import { cmdline, loadavg, machineInfo, pidsMatching, rssKiB, spawnServer, waitHealthy } from "./procs.ts";
import { renderReport } from "./report.ts";
import { type BenchResults, type Key, toStored } from "./results.ts";
import {
  chatStreamBody,
  completionBody,
  findProcs,
  getJson,
  log,
  median,
  MODEL,
  perSystem,
  portOf,
  postJson,
  type System,
  tokenizeBody,
} from "./systems.ts";
import { measureMemory, membersOf, snapshot } from "./memory.ts";
import { measureMetricsCost } from "./metrics_cost.ts";
import { measureStreaming } from "./streaming.ts";
import { measureFloor } from "./floor.ts";
import { measureSwap } from "./swap.ts";
import { type LoadPlan, type Roles, steadyWarmup, throughputAll } from "./throughput.ts";
import { wrkVersion } from "./wrk.ts";

/** Everything a run starts, stopped in `stopAll` at the end, on error and on Ctrl-C / SIGTERM. */
class Started {
  #stoppers: (() => Promise<unknown>)[] = [];
  /** the run's model folders: every llama-server and runner started on one carries it on its command line */
  modelsDirs: string[] = [];

  add(stop: () => Promise<unknown>): void {
    this.#stoppers.push(stop);
  }

  addDir(dir: string): void {
    this.modelsDirs.push(dir);
  }

  /** Stops everything; returns the pids of our processes that had to be SIGKILLed after the orderly stops. */
  async stopAll(): Promise<number[]> {
    for (const stop of this.#stoppers.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        console.error(`bench: cleanup: ${(err as Error).message}`);
      }
    }
    // Anything still running that was started on our models dirs (a router's child, a runner's engine) is ours.
    const left = this.modelsDirs.flatMap(pidsMatching);
    for (const pid of left) {
      console.error(`bench: killing leftover process ${pid}: ${cmdline(pid)}`);
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    for (const dir of this.modelsDirs.splice(0)) await Deno.remove(dir, { recursive: true }).catch(() => {});
    return left;
  }
}

async function measure(opts: BenchOptions, started: Started): Promise<BenchResults<number>> {
  const N = samplesFor(opts.quick);
  const machine = machineInfo();
  const loadBefore = loadavg();
  const wrk = await wrkVersion();
  const client: LoadClient = opts.client ?? (wrk ? "wrk" : "deno");
  if (client === "wrk" && !wrk) {
    throw new Error("--client wrk: wrk is not installed (apt-get install -y wrk)");
  }
  if (!wrk) {
    log("wrk is not installed: throughput uses the Deno load generator (apt-get install -y wrk for wrk)");
  }

  const env = Deno.env.toObject();
  const bin = env.LLAMA_SERVER_BIN ?? await resolveEngine({ env, log });
  log(`engine: ${bin}`);
  const modelsDir = await makeModelsDir([MODEL]);
  started.addDir(modelsDir);
  const modelPath = join(modelsDir, `${MODEL}.gguf`);

  log("starting (a) llama-server, (c) llama.cpp router, (b) Switchyard");
  const direct = spawnServer(bin, ["-m", modelPath, ...opts.engineFlags]);
  started.add(() => direct.stop());
  const router = spawnServer(bin, ["--models-dir", modelsDir, ...opts.engineFlags]);
  started.add(() => router.stop());
  const gw = await startGateway({
    args: ["--models-dir", modelsDir, ...opts.engineFlags, ...opts.gatewayArgs],
    env: { LLAMA_SERVER_BIN: bin },
  });
  started.add(() => gw.stop());
  await waitHealthy(`${direct.url}/health`, direct, 60_000);
  await waitHealthy(`${router.url}/health`, router, 60_000);
  const gwPort = Number(new URL(gw.url).port);
  const systems: System[] = [
    { key: "direct", port: direct.port, url: direct.url, frontPid: direct.pid },
    { key: "switchyard", port: gwPort, url: gw.url, frontPid: gw.pid },
    { key: "router", port: router.port, url: router.url, frontPid: router.pid },
  ];
  const sys = Object.fromEntries(systems.map((s) => [s.key, s])) as Record<Key, System>;

  // First request loads the model in (b) and (c); then every kind of request is warmed up everywhere.
  log("loading the model and warming up");
  for (const s of systems) {
    const res = await postJson(`${s.url}/tokenize`, tokenizeBody);
    if (!res.ok) throw new Error(`${s.key}: first request failed: ${res.status} ${await res.text()}`);
    await res.body?.cancel();
  }
  const tok = (s: System) => encodeRequest("POST", s.port, "/tokenize", tokenizeBody);
  const comp = (s: System) => encodeRequest("POST", s.port, "/completion", completionBody);
  const chat = (s: System) => encodeRequest("POST", s.port, "/v1/chat/completions", chatStreamBody);
  await interleaved(systems, tok, N.warmup, (e) => e.totalMs, "warm-up tokenize");
  await interleaved(systems, comp, Math.ceil(N.warmup / 10), (e) => e.totalMs, "warm-up completion");
  await interleaved(systems, chat, Math.ceil(N.warmup / 20), (e) => e.totalMs, "warm-up stream");

  const props: Record<Key, Record<string, unknown>> = {
    direct: await getJson(`${direct.url}/props`),
    switchyard: await getJson(`${gw.url}/props`),
    router: await getJson(`${router.url}/props`),
  };
  const procs = findProcs(direct, gw, router);
  const enginePort = {
    direct: direct.port,
    switchyard: portOf(procs.switchyard.engine),
    router: portOf(procs.router.engine),
  };
  const rssIdle = {
    gateway: rssKiB(procs.switchyard.gateway),
    runner: rssKiB(procs.switchyard.runner),
  };
  const members = membersOf(procs);
  const memoryIdle = snapshot(members);
  const roles: Record<Key, Roles> = {
    direct: { engine: procs.direct.engine },
    switchyard: {
      gateway: procs.switchyard.gateway,
      runner: procs.switchyard.runner,
      engine: procs.switchyard.engine,
    },
    router: { router: procs.router.router, engine: procs.router.engine },
  };

  log(
    `latency: ${N.tokenize} tokenize, ${N.completion} completions, ${N.ttfc} streams per system, interleaved`,
  );
  const none = () => perSystem((): number[] => []);
  const doLatency = opts.phases.has("latency");
  const tokLat = doLatency
    ? await interleaved(systems, tok, N.tokenize, (e) => e.totalMs, "tokenize")
    : none();
  const compLat = doLatency
    ? await interleaved(systems, comp, N.completion, (e) => e.totalMs, "completion")
    : none();
  const ttfc = doLatency ? await interleaved(systems, chat, N.ttfc, (e) => e.firstBodyMs, "stream") : none();
  const streaming = opts.phases.has("streaming") ? await measureStreaming(systems, roles, N) : undefined;
  const loaded = ["floor", "throughput", "memory"].some((p) => opts.phases.has(p as Phase));
  const plan: LoadPlan = { systems, roles, client, enginePort, samples: N };
  const warmup = loaded ? await steadyWarmup(plan) : undefined;
  const floor = opts.phases.has("floor")
    ? await measureFloor({ ...sys, ...N, client, onStarted: (stop) => started.add(stop) })
    : undefined;

  log(
    `throughput: /tokenize at ${
      N.connections.join(", ")
    } connections, ${client}, ${N.rounds} × ${N.roundMs} ms each`,
  );
  const tput = opts.phases.has("throughput") ? await throughputAll(plan) : perSystem(() => []);

  const rss = {
    direct: { engine: rssKiB(procs.direct.engine) },
    switchyard: {
      gateway: rssKiB(procs.switchyard.gateway),
      runner: rssKiB(procs.switchyard.runner),
      spareRunners: procs.switchyard.spares.map(rssKiB),
      engine: rssKiB(procs.switchyard.engine),
      gatewayIdle: rssIdle.gateway,
      runnerIdle: rssIdle.runner,
    },
    router: { router: rssKiB(procs.router.router), engine: rssKiB(procs.router.engine) },
  };
  if (opts.phases.has("memory")) log(`memory: /tokenize load per system, ${N.memoryLoadMs} ms each`);
  const memory = opts.phases.has("memory") ? await measureMemory(plan, members, memoryIdle) : undefined;

  log(`cold start: ${N.cold} samples per system`);
  const cold = none();
  for (let i = 0; i < (opts.phases.has("cold") ? N.cold : 0); i++) {
    cold.direct.push(await coldDirect(bin, modelPath, opts.engineFlags));
    cold.switchyard.push(await coldRouted(sys.switchyard));
    cold.router.push(await coldRouted(sys.router));
  }
  const swap = opts.phases.has("swap")
    ? await measureSwap(
      { bin, engineFlags: opts.engineFlags, gatewayArgs: opts.gatewayArgs, swaps: N.swaps },
      started,
    )
    : undefined;
  const metricsCost = opts.phases.has("metrics")
    ? await measureMetricsCost({
      modelsDir,
      bin,
      engineFlags: opts.engineFlags,
      gatewayArgs: opts.gatewayArgs,
      client,
      samples: N,
    }, started)
    : undefined;
  const loadAfter = loadavg();

  const lat = (m: Record<Key, number[]>) => perSystem((k) => dist(m[k]));
  return {
    date: new Date().toISOString(),
    machine: { ...machine, loadavgBefore: loadBefore, loadavgAfter: loadAfter },
    engine: { bin, flags: opts.engineFlags, buildInfo: props.router.build_info ?? props.direct.build_info },
    buildInfo: perSystem((k) => props[k].build_info),
    client: { generator: client, wrk: wrk ?? null },
    samples: N,
    latencyMs: { tokenize: lat(tokLat), completion: lat(compLat), ttfc: lat(ttfc) },
    coldStartMs: perSystem((k) => ({
      median: median(cold[k]),
      min: Math.min(...cold[k]),
      max: Math.max(...cold[k]),
      samples: cold[k],
    })),
    throughput: tput,
    rssKiB: rss,
    streaming,
    steadyWarmup: warmup,
    floor,
    swap,
    memory,
    metricsCost,
  };
}

async function write(results: BenchResults, report: string): Promise<void> {
  const dir = new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const json = join(dir, "latest.json");
  await Deno.writeTextFile(json, JSON.stringify(results, null, 2) + "\n");
  await Deno.writeTextFile(join(dir, "latest.md"), report);
  // The committed JSON must pass the repository's `deno fmt --check`; the report opts out of it (report.ts).
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", json],
    stdout: "null",
    stderr: "inherit",
  }).output();
  log(`wrote ${json} and latest.md`);
}

/** One whole run; resolves with the exit code once everything it started has stopped. */
async function run(opts: BenchOptions): Promise<number> {
  const started = new Started();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      console.error(`bench: ${signal}: stopping everything`);
      started.stopAll().finally(() => Deno.exit(130));
    });
  }
  let code = 0;
  try {
    const results = toStored(await measure(opts, started));
    const report = renderReport(results);
    console.log(report.trimEnd());
    if (opts.write) await write(results, report);
  } catch (err) {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    code = 1;
  }
  const ourDirs = [...started.modelsDirs];
  const killed = await started.stopAll();
  const still = ourDirs.flatMap(pidsMatching);
  if (killed.length || still.length) {
    log(
      `cleanup: had to SIGKILL ${killed.length} leftover process(es); still running: ${
        still.join(" ") || "none"
      }`,
    );
    code ||= still.length ? 1 : 0;
  } else {
    log("cleanup: every process the bench started has exited");
  }
  return code;
}

if (import.meta.main) {
  let opts: BenchOptions;
  try {
    opts = parseArgs(Deno.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (opts.help) {
    console.log(USAGE);
  } else {
    Deno.exit(await run(opts));
  }
}
