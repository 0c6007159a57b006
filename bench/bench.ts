/**
 * `deno task bench`: Switchyard against llama-server alone and against llama.cpp's own router mode, on one
 * tiny model, in one run. Prints a Markdown table and writes `bench/results/latest.json`.
 *
 *   (a) direct      `llama-server -m tiny.gguf FLAGS`                 the floor: no proxy at all
 *   (b) Switchyard  `main.ts --models-dir DIR FLAGS`                  gateway → runner → llama-server
 *   (c) llama.cpp   `llama-server --models-dir DIR FLAGS`             the router Switchyard replaces
 *
 * All three run at once, idle while another is measured; latency samples are interleaved round-robin so
 * that background load on the machine hits all three alike. Options: `--quick` (short runs, for trying the
 * bench itself), `--client deno|wrk` (load generator; default wrk when installed), `--no-write`.
 */
import { join } from "node:path";
import { resolveEngine } from "../router/engine/binary.ts";
import { makeModelsDir } from "../tests/helpers/models.ts";
import { startGateway, type TestGateway } from "../tests/helpers/gateway.ts";
import {
  encodeRequest,
  type Exchange,
  HttpConnection,
  type LoadResult,
  percentile,
  runLoad,
} from "./http_client.ts";
import {
  childrenOf,
  cmdline,
  CpuMeter,
  loadavg,
  machineInfo,
  pidsMatching,
  rssKiB,
  type Server,
  spawnServer,
  tcpStates,
  waitHealthy,
} from "./procs.ts";
import { runWrk, wrkVersion } from "./wrk.ts";

/** Edges of a load run left out of CPU sampling: connection set-up and the requests in flight at the end. */
const CPU_EDGE_MS = 250;

const MODEL = "tiny";
/**
 * The same llama-server flags for all three; both routers pass them on to their model instances. `-t 1`: on a
 * 2-core machine shared with the gateway and the load generator, llama.cpp's default of one compute thread per
 * core makes every token wait at a spinning barrier for whichever thread was preempted, so a 4-token completion
 * swings between 2 ms and 1 s and drowns what the proxies add. One thread keeps generation steady.
 */
const DEFAULT_ENGINE_FLAGS = ["-c", "512", "-np", "4", "--no-webui", "-t", "1"];
const QUICK = Deno.args.includes("--quick");
const argValue = (name: string): string | undefined => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const CLIENT_ARG = argValue("--client");
/** `--engine-flags "..."` replaces the llama-server flags (all three systems get the same). */
const ENGINE_FLAGS = argValue("--engine-flags")?.split(/\s+/).filter(Boolean) ?? DEFAULT_ENGINE_FLAGS;
/** `--gateway-args "..."`: extra Switchyard-only flags (e.g. `--spare-runners 0`), for experiments. */
const GATEWAY_EXTRA = argValue("--gateway-args")?.split(/\s+/).filter(Boolean) ?? [];
/** `--phases latency,throughput,cold`: run only some phases (the report shows n/a for the rest). */
const PHASES = new Set((argValue("--phases") ?? "latency,throughput,cold").split(","));

const N = {
  warmup: QUICK ? 50 : 300,
  tokenize: QUICK ? 200 : 2000,
  completion: QUICK ? 40 : 300,
  ttfc: QUICK ? 30 : 150,
  cold: QUICK ? 3 : 10,
  loadWarmupMs: 1000,
  /** measured time per system and connection count = rounds × roundMs (wrk counts whole seconds) */
  rounds: QUICK ? 1 : 3,
  roundMs: 1000,
  connections: [1, 16, 64],
};
/** Pause after an unload before the next cold start: Switchyard re-spawns its spare runner meanwhile. */
const COLD_SETTLE_MS = 500;
const UNLOAD_TIMEOUT_MS = 30_000;
const COLD_REQUEST_RETRY_MS = 2;
const COLD_REQUEST_RETRIES = 2_500;

type Key = "direct" | "switchyard" | "router";
const KEYS: Key[] = ["direct", "switchyard", "router"];
const LABEL: Record<Key, string> = {
  direct: "(a) llama-server direct",
  switchyard: "(b) Switchyard",
  router: "(c) llama.cpp router",
};

interface System {
  key: Key;
  port: number;
  url: string;
  /** the process clients talk to: the engine itself, Switchyard's gateway, or the llama.cpp router */
  frontPid: number;
}

const tokenizeBody = { model: MODEL, content: "hello world" };
const completionBody = { model: MODEL, prompt: "hello", n_predict: 4 };
const chatStreamBody = {
  model: MODEL,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 16,
  stream: true,
};
const coldBody = { model: MODEL, prompt: "hello", n_predict: 4, stream: true };

// ---------------------------------------------------------------------------------------------------------
// lifecycle: everything started is registered here and stopped in `cleanup`, also on Ctrl-C / SIGTERM

const stoppers: (() => Promise<unknown>)[] = [];
let modelsDir = "";

/** Stops everything; returns the pids of our processes that had to be SIGKILLed after the orderly stops. */
async function cleanup(): Promise<number[]> {
  for (const stop of stoppers.splice(0).reverse()) {
    try {
      await stop();
    } catch (err) {
      console.error(`bench: cleanup: ${(err as Error).message}`);
    }
  }
  if (!modelsDir) return [];
  // Anything still running that was started on our models dir (a router's child, a runner's engine) is ours.
  const left = pidsMatching(modelsDir);
  for (const pid of left) {
    console.error(`bench: killing leftover process ${pid}: ${cmdline(pid)}`);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  await Deno.remove(modelsDir, { recursive: true }).catch(() => {});
  modelsDir = "";
  return left;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    console.error(`bench: ${signal}: stopping everything`);
    cleanup().finally(() => Deno.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------------------
// small helpers

const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

async function getJson(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function expectOk(ex: Exchange, what: string): Exchange {
  if (ex.status !== 200) {
    throw new Error(
      `${what}: HTTP ${ex.status} ${ex.body ? new TextDecoder().decode(ex.body).slice(0, 300) : ""}`,
    );
  }
  return ex;
}

interface Dist {
  p50: number;
  p99: number;
  mean: number;
  n: number;
}

function dist(samples: number[]): Dist {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    n: sorted.length,
  };
}

// ---------------------------------------------------------------------------------------------------------
// phases

/**
 * `n` rounds; each round sends one request to every system, in an order that rotates per round, on one
 * keep-alive connection per system. Returns what `pick` reads from each exchange, per system.
 */
async function interleaved(
  systems: System[],
  body: (s: System) => Uint8Array,
  n: number,
  pick: (ex: Exchange) => number,
  what: string,
): Promise<Record<Key, number[]>> {
  const conns = systems.map((s) => new HttpConnection(s.port));
  const reqs = systems.map(body);
  const out = { direct: [], switchyard: [], router: [] } as Record<Key, number[]>;
  try {
    for (let round = 0; round < n; round++) {
      for (let j = 0; j < systems.length; j++) {
        const i = (round + j) % systems.length;
        const ex = expectOk(await conns[i].request(reqs[i], true), `${what} on ${systems[i].key}`);
        out[systems[i].key].push(pick(ex));
      }
    }
    for (let i = 0; i < systems.length; i++) {
      if (conns[i].opened === 1) continue;
      log(
        `  ${what} on ${systems[i].key}: ${
          conns[i].opened
        } TCP connections for ${n} requests (server closed keep-alive)`,
      );
    }
  } finally {
    conns.forEach((c) => c.close());
  }
  return out;
}

interface Throughput {
  connections: number;
  /** mean over the rounds */
  rps: number;
  rpsRounds: number[];
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU over the measured window, % of one core, per role */
  cpu: Record<string, number>;
  /** CPU µs per answered request, per role */
  cpuUsPerRequest: Record<string, number>;
  /** loopback sockets to the engine's port that went to TIME_WAIT during the run, per 1000 requests */
  upstreamClosesPer1k?: number;
  /** generator's TCP connections (Deno generator only) */
  clientConnections?: number;
}

/** Roles whose CPU is watched during load: which pid does what, per system. */
type Roles = Record<string, number>;

/** One system under load once: `durationMs` of closed-loop /tokenize requests on `connections` connections. */
async function loadOnce(
  sys: System,
  roles: Roles,
  connections: number,
  client: "wrk" | "deno",
  enginePort: number,
  durationMs: number,
): Promise<Throughput & { requests: number; timeWaits: number }> {
  const path = "/tokenize";
  let result: LoadResult;
  let meter: CpuMeter;
  let clientPid: number;
  const tw0 = tcpStates(enginePort).timeWait;
  if (client === "wrk") {
    const run = await runWrk({
      url: sys.url + path,
      body: tokenizeBody,
      connections,
      durationMs,
      watch: Object.values(roles),
    });
    [result, meter, clientPid] = [run, run.meter, run.pid];
  } else {
    const m = meter = new CpuMeter([...Object.values(roles), Deno.pid]);
    clientPid = Deno.pid;
    result = await runLoad({
      port: sys.port,
      request: encodeRequest("POST", sys.port, path, tokenizeBody),
      connections,
      warmupMs: 0,
      durationMs,
      // The first and last moments (connecting, draining) are left out of the CPU window.
      onWindow: (edge) => edge === "start" ? m.start() : m.end(),
      cpuEdgeMs: CPU_EDGE_MS,
    });
  }
  const tw1 = tcpStates(enginePort).timeWait;
  const cpu: Record<string, number> = {};
  const cpuUs: Record<string, number> = {};
  for (const [role, pid] of Object.entries({ ...roles, client: clientPid })) {
    cpu[role] = meter.percent(pid);
    cpuUs[role] = (meter.percent(pid) / 100) * 1e6 / result.rps;
  }
  return {
    connections,
    rps: result.rps,
    rpsRounds: [result.rps],
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: result.errors,
    cpu,
    cpuUsPerRequest: cpuUs,
    requests: result.requests,
    timeWaits: tw1 - tw0,
    clientConnections: client === "deno" ? result.connectionsOpened : undefined,
  };
}

/**
 * Throughput at each connection count: every system is warmed up, then measured in `N.rounds` short rounds
 * that alternate between the systems, so a burst of background load on the shared machine lands on all of
 * them rather than on whichever happened to run then. Per-round figures are averaged.
 */
async function throughputAll(
  systems: System[],
  roles: Record<Key, Roles>,
  client: "wrk" | "deno",
  enginePort: Record<Key, number>,
): Promise<Record<Key, Throughput[]>> {
  const out = { direct: [], switchyard: [], router: [] } as Record<Key, Throughput[]>;
  for (const c of N.connections) {
    for (const s of systems) await loadOnce(s, roles[s.key], c, client, enginePort[s.key], N.loadWarmupMs);
    const rounds = { direct: [], switchyard: [], router: [] } as Record<
      Key,
      Awaited<ReturnType<typeof loadOnce>>[]
    >;
    for (let r = 0; r < N.rounds; r++) {
      for (let j = 0; j < systems.length; j++) {
        const s = systems[(r + j) % systems.length];
        rounds[s.key].push(await loadOnce(s, roles[s.key], c, client, enginePort[s.key], N.roundMs));
      }
    }
    for (const s of systems) {
      const rs = rounds[s.key];
      const mean = (f: (t: Throughput) => number) => rs.reduce((a, t) => a + f(t), 0) / rs.length;
      const roleNames = Object.keys(rs[0].cpu);
      const requests = rs.reduce((a, t) => a + t.requests, 0);
      const t: Throughput = {
        connections: c,
        rps: mean((t) => t.rps),
        rpsRounds: rs.map((t) => t.rps),
        p50Ms: median(rs.map((t) => t.p50Ms)),
        p99Ms: mean((t) => t.p99Ms),
        errors: rs.reduce((a, t) => a + t.errors, 0),
        cpu: Object.fromEntries(roleNames.map((k) => [k, mean((t) => t.cpu[k])])),
        cpuUsPerRequest: Object.fromEntries(roleNames.map((k) => [k, mean((t) => t.cpuUsPerRequest[k])])),
        // The direct engine's port sees only the client's own connections; the routers' engines see upstream ones.
        upstreamClosesPer1k: s.key === "direct"
          ? undefined
          : (rs.reduce((a, t) => a + t.timeWaits, 0) / Math.max(1, requests)) * 1000,
        clientConnections: client === "deno"
          ? rs.reduce((a, t) => a + (t.clientConnections ?? 0), 0)
          : undefined,
      };
      out[s.key].push(t);
      log(
        `  ${s.key} c=${c}: ${t.rps.toFixed(0)} req/s (rounds ${
          t.rpsRounds.map((x) => x.toFixed(0)).join(", ")
        }), cpu ${fmtCpu(t.cpu)}`,
      );
    }
  }
  return out;
}

/** The model's state in a router's GET /models. */
async function modelState(sys: System): Promise<string> {
  const list = await getJson(`${sys.url}/models`) as { data: { id: string; status: { value: string } }[] };
  return list.data.find((m) => m.id === MODEL)?.status?.value ?? "(absent)";
}

async function unloadAndWait(sys: System): Promise<void> {
  const res = await postJson(`${sys.url}/models/unload`, { model: MODEL });
  const text = await res.text();
  if (!res.ok) throw new Error(`unload on ${sys.key}: ${res.status} ${text}`);
  const deadline = performance.now() + UNLOAD_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (await modelState(sys) === "unloaded") return;
    await sleep(10);
  }
  throw new Error(`${sys.key}: ${MODEL} not unloaded in ${UNLOAD_TIMEOUT_MS} ms`);
}

/** Sends a streamed completion until it is answered: connection refused and 503 (still loading) are retried. */
async function firstTokenMs(port: number, t0: number): Promise<number> {
  const req = encodeRequest("POST", port, "/completion", coldBody);
  let last = "";
  for (let i = 0; i < COLD_REQUEST_RETRIES; i++) {
    const conn = new HttpConnection(port);
    try {
      const ex = await conn.request(req, true);
      if (ex.status === 200) return performance.now() - t0 - (ex.totalMs - ex.firstBodyMs);
      last = `HTTP ${ex.status}`;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      conn.close();
    }
    await sleep(COLD_REQUEST_RETRY_MS);
  }
  throw new Error(`no first token on port ${port}: ${last}`);
}

/** (a)'s cold start: from spawning llama-server to the first streamed token. */
async function coldDirect(bin: string, modelPath: string): Promise<number> {
  const listening = Promise.withResolvers<void>();
  const t0 = performance.now();
  const server = spawnServer(bin, ["-m", modelPath, ...ENGINE_FLAGS], (line) => {
    if (/listening on http/.test(line)) listening.resolve();
  });
  try {
    // The request goes out the moment the server says it listens (no polling delay); retries cover the rest.
    await Promise.race([listening.promise, sleep(10_000), server.status]);
    return await firstTokenMs(server.port, t0);
  } finally {
    await server.stop();
  }
}

/** (b) and (c)'s cold start: a request for an unloaded model, to its first streamed token. */
async function coldRouted(sys: System): Promise<number> {
  await unloadAndWait(sys);
  await sleep(COLD_SETTLE_MS);
  const conn = new HttpConnection(sys.port);
  try {
    const ex = expectOk(
      await conn.request(encodeRequest("POST", sys.port, "/completion", coldBody), true),
      "cold",
    );
    return ex.firstBodyMs;
  } finally {
    conn.close();
  }
}

interface Procs {
  direct: { engine: number };
  switchyard: { gateway: number; runner: number; engine: number; spares: number[] };
  router: { router: number; engine: number };
}

function findProcs(direct: Server, gw: TestGateway, router: Server): Procs {
  const isRunner = (pid: number) => /runners\/runner\.ts|--switchyard-runner/.test(cmdline(pid));
  const isEngine = (pid: number) => cmdline(pid).includes("llama-server");
  const runners = childrenOf(gw.pid).filter(isRunner);
  const withEngine = runners.find((r) => childrenOf(r).some(isEngine));
  if (withEngine === undefined) throw new Error("Switchyard: no runner with a running engine");
  const routerEngine = childrenOf(router.pid).find(isEngine);
  if (routerEngine === undefined) throw new Error("llama.cpp router: no running model instance");
  return {
    direct: { engine: direct.pid },
    switchyard: {
      gateway: gw.pid,
      runner: withEngine,
      engine: childrenOf(withEngine).find(isEngine)!,
      spares: runners.filter((r) => r !== withEngine),
    },
    router: { router: router.pid, engine: routerEngine },
  };
}

function portOf(pid: number): number {
  const m = cmdline(pid).match(/--port (\d+)/);
  if (!m) throw new Error(`no --port in ${cmdline(pid)}`);
  return Number(m[1]);
}

const mib = (kib: number | null) => (kib === null ? NaN : kib / 1024);

// ---------------------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const machine = machineInfo();
  const loadBefore = loadavg();
  const wrk = await wrkVersion();
  const client: "wrk" | "deno" = CLIENT_ARG === "deno" || CLIENT_ARG === "wrk"
    ? CLIENT_ARG
    : wrk
    ? "wrk"
    : "deno";
  if (client === "wrk" && !wrk) {
    throw new Error("--client wrk: wrk is not installed (apt-get install -y wrk)");
  }
  if (!wrk) {
    log("wrk is not installed: throughput uses the Deno load generator (apt-get install -y wrk for wrk)");
  }

  const env = Deno.env.toObject();
  const bin = env.LLAMA_SERVER_BIN ?? await resolveEngine({ env, log });
  log(`engine: ${bin}`);
  modelsDir = await makeModelsDir([MODEL]);
  const modelPath = join(modelsDir, `${MODEL}.gguf`);

  log("starting (a) llama-server, (c) llama.cpp router, (b) Switchyard");
  const direct = spawnServer(bin, ["-m", modelPath, ...ENGINE_FLAGS]);
  stoppers.push(() => direct.stop());
  const router = spawnServer(bin, ["--models-dir", modelsDir, ...ENGINE_FLAGS]);
  stoppers.push(() => router.stop());
  const gw = await startGateway({
    args: ["--models-dir", modelsDir, ...ENGINE_FLAGS, ...GATEWAY_EXTRA],
    env: { LLAMA_SERVER_BIN: bin },
  });
  stoppers.push(() => gw.stop());
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

  log(
    `latency: ${N.tokenize} tokenize, ${N.completion} completions, ${N.ttfc} streams per system, interleaved`,
  );
  const none = () => ({ direct: [], switchyard: [], router: [] }) as Record<Key, number[]>;
  const doLatency = PHASES.has("latency");
  const tokLat = doLatency
    ? await interleaved(systems, tok, N.tokenize, (e) => e.totalMs, "tokenize")
    : none();
  const compLat = doLatency
    ? await interleaved(systems, comp, N.completion, (e) => e.totalMs, "completion")
    : none();
  const ttfc = doLatency ? await interleaved(systems, chat, N.ttfc, (e) => e.firstBodyMs, "stream") : none();

  log(
    `throughput: /tokenize at ${
      N.connections.join(", ")
    } connections, ${client}, ${N.rounds} × ${N.roundMs} ms each`,
  );
  const roles: Record<Key, Roles> = {
    direct: { engine: procs.direct.engine },
    switchyard: {
      gateway: procs.switchyard.gateway,
      runner: procs.switchyard.runner,
      engine: procs.switchyard.engine,
    },
    router: { router: procs.router.router, engine: procs.router.engine },
  };
  const tput = PHASES.has("throughput")
    ? await throughputAll(systems, roles, client, enginePort)
    : { direct: [], switchyard: [], router: [] } as Record<Key, Throughput[]>;

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

  log(`cold start: ${N.cold} samples per system`);
  const cold = none();
  for (let i = 0; i < (PHASES.has("cold") ? N.cold : 0); i++) {
    cold.direct.push(await coldDirect(bin, modelPath));
    cold.switchyard.push(await coldRouted(sys.switchyard));
    cold.router.push(await coldRouted(sys.router));
  }
  const loadAfter = loadavg();

  // ---- report ----
  const lat = (m: Record<Key, number[]>) =>
    Object.fromEntries(KEYS.map((k) => [k, dist(m[k])])) as Record<Key, Dist>;
  const results = {
    date: new Date().toISOString(),
    machine: { ...machine, loadavgBefore: loadBefore, loadavgAfter: loadAfter },
    engine: { bin, flags: ENGINE_FLAGS, buildInfo: props.router.build_info ?? props.direct.build_info },
    buildInfo: Object.fromEntries(KEYS.map((k) => [k, props[k].build_info])),
    client: { generator: client, wrk: wrk ?? null },
    samples: N,
    latencyMs: { tokenize: lat(tokLat), completion: lat(compLat), ttfc: lat(ttfc) },
    coldStartMs: Object.fromEntries(
      KEYS.map((
        k,
      ) => [k, {
        median: median(cold[k]),
        min: Math.min(...cold[k]),
        max: Math.max(...cold[k]),
        samples: cold[k],
      }]),
    ),
    throughput: tput,
    rssKiB: rss,
  };
  const report = renderReport(results);
  console.log(report);
  if (!Deno.args.includes("--no-write")) {
    const dir = new URL("./results/", import.meta.url).pathname;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "latest.json"), JSON.stringify(round(results), null, 2) + "\n");
    await Deno.writeTextFile(join(dir, "latest.md"), report + "\n");
    // Committed files must pass the repository's `deno fmt --check`, which aligns Markdown tables.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", join(dir, "latest.json"), join(dir, "latest.md")],
      stdout: "null",
      stderr: "inherit",
    }).output();
    log(`wrote ${join(dir, "latest.json")} and latest.md`);
  }
}

function fmtCpu(cpu: Record<string, number>): string {
  return Object.entries(cpu).map(([k, v]) => `${k} ${v.toFixed(0)}%`).join(", ");
}

/** Rounds every number to 3 significant decimals so the committed JSON stays small and diffable. */
function round(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : null;
  if (Array.isArray(value)) return value.map(round);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, round(v)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// the report

type Results = {
  machine: ReturnType<typeof machineInfo> & { loadavgBefore: string; loadavgAfter: string };
  engine: { bin: string; flags: string[]; buildInfo: unknown };
  buildInfo: Record<string, unknown>;
  client: { generator: string; wrk: string | null };
  latencyMs: Record<"tokenize" | "completion" | "ttfc", Record<Key, Dist>>;
  coldStartMs: Record<string, { median: number; min: number; max: number }>;
  throughput: Record<Key, Throughput[]>;
  rssKiB: {
    direct: { engine: number | null };
    switchyard: {
      gateway: number | null;
      runner: number | null;
      spareRunners: (number | null)[];
      engine: number | null;
      gatewayIdle: number | null;
      runnerIdle: number | null;
    };
    router: { router: number | null; engine: number | null };
  };
};

function renderReport(r: Results): string {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
  const ratio = (
    a: number,
    b: number,
  ) => (Number.isFinite(a / b) && b !== 0 ? `${(a / b).toFixed(2)}×` : "—");
  const signed = (x: number, d = 2) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(d)}` : "n/a");
  const rows: string[][] = [];
  const L = r.latencyMs;
  for (
    const [name, m] of [
      ["`/tokenize` latency p50 / p99 (ms)", L.tokenize],
      ["completion n_predict 4, p50 / p99 (ms)", L.completion],
      ["time to first streamed chunk, p50 / p99 (ms)", L.ttfc],
    ] as const
  ) {
    rows.push([
      name,
      `${f(m.direct.p50, 3)} / ${f(m.direct.p99, 3)}`,
      `${f(m.switchyard.p50, 3)} / ${f(m.switchyard.p99, 3)}`,
      `${f(m.router.p50, 3)} / ${f(m.router.p99, 3)}`,
      ratio(m.switchyard.p50, m.direct.p50),
      ratio(m.switchyard.p50, m.router.p50),
      "",
    ]);
    const add = (k: Key) => m[k].p50 - m.direct.p50;
    const add99 = (k: Key) => m[k].p99 - m.direct.p99;
    rows.push([
      "↳ added vs direct, p50 / p99 (ms)",
      "0",
      `${signed(add("switchyard"), 3)} / ${signed(add99("switchyard"), 3)}`,
      `${signed(add("router"), 3)} / ${signed(add99("router"), 3)}`,
      "",
      ratio(add("switchyard"), add("router")),
      name.startsWith("`/tokenize`") ? target(add("switchyard") < 0.5, "added p50 < 0.5 ms") : "",
    ]);
  }
  const c = r.coldStartMs;
  rows.push([
    "cold start → first token, median (min–max) ms",
    `${f(c.direct.median, 1)} (${f(c.direct.min, 0)}–${f(c.direct.max, 0)})`,
    `${f(c.switchyard.median, 1)} (${f(c.switchyard.min, 0)}–${f(c.switchyard.max, 0)})`,
    `${f(c.router.median, 1)} (${f(c.router.min, 0)}–${f(c.router.max, 0)})`,
    ratio(c.switchyard.median, c.direct.median),
    ratio(c.switchyard.median, c.router.median),
    target(c.switchyard.median <= 1.25 * c.router.median, "≤ 1.25× router"),
  ]);
  const T = r.throughput;
  for (let i = 0; i < T.direct.length; i++) {
    const n = T.direct[i].connections;
    const [a, b, cc] = [T.direct[i], T.switchyard[i], T.router[i]];
    const err = (t: Throughput) => (t.errors ? ` (${t.errors} errors)` : "");
    rows.push([
      `\`/tokenize\` req/s, ${n} connection${n > 1 ? "s" : ""}`,
      f(a.rps, 0) + err(a),
      f(b.rps, 0) + err(b),
      f(cc.rps, 0) + err(cc),
      ratio(b.rps, a.rps),
      ratio(b.rps, cc.rps),
      n === 16 ? target(b.rps >= 5 * cc.rps, "≥ 5× router") : "",
    ]);
  }
  const at16 = (k: Key): Throughput | undefined => T[k].find((t) => t.connections === 16) ?? T[k][0];
  const us = (t: Throughput | undefined, role: string) => f(t?.cpuUsPerRequest[role] ?? NaN, 0);
  rows.push([
    "CPU µs per request at 16 conns: front / runner / engine",
    `— / — / ${us(at16("direct"), "engine")}`,
    `${us(at16("switchyard"), "gateway")} / ${us(at16("switchyard"), "runner")} / ${
      us(at16("switchyard"), "engine")
    }`,
    `${us(at16("router"), "router")} / — / ${us(at16("router"), "engine")}`,
    "",
    ratio(at16("switchyard")?.cpuUsPerRequest.gateway ?? NaN, at16("router")?.cpuUsPerRequest.router ?? NaN),
    "",
  ]);
  const closes = (k: Key) => at16(k)?.upstreamClosesPer1k;
  rows.push([
    "gateway→engine sockets put in TIME_WAIT per 1k requests, 16 conns",
    "—",
    f(closes("switchyard") ?? NaN, 0),
    f(closes("router") ?? NaN, 0),
    "",
    "",
    "",
  ]);
  const M = r.rssKiB;
  const sy = M.switchyard;
  const syTotal = mib(sy.gateway) + mib(sy.runner) + mib(sy.engine);
  const rtTotal = mib(M.router.router) + mib(M.router.engine);
  rows.push([
    "RSS of the front process (MiB)",
    "—",
    `gateway ${f(mib(sy.gateway), 1)} (idle ${f(mib(sy.gatewayIdle), 1)})`,
    `router ${f(mib(M.router.router), 1)}`,
    "",
    ratio(mib(sy.gateway), mib(M.router.router)),
    "",
  ]);
  rows.push([
    "RSS per model: runner + engine (MiB)",
    `— + ${f(mib(M.direct.engine), 1)}`,
    `${f(mib(sy.runner), 1)} + ${f(mib(sy.engine), 1)}`,
    `— + ${f(mib(M.router.engine), 1)}`,
    ratio(mib(sy.runner) + mib(sy.engine), mib(M.direct.engine)),
    ratio(mib(sy.runner) + mib(sy.engine), mib(M.router.engine)),
    "",
  ]);
  rows.push([
    "RSS total, one model loaded (MiB)",
    f(mib(M.direct.engine), 1),
    `${f(syTotal, 1)} (+ ${sy.spareRunners.length} spare runner${sy.spareRunners.length === 1 ? "" : "s"} ${
      sy.spareRunners.map((k) => f(mib(k), 1)).join(", ")
    })`,
    f(rtTotal, 1),
    ratio(syTotal, mib(M.direct.engine)),
    ratio(syTotal, rtTotal),
    "",
  ]);

  const header = ["metric", LABEL.direct, LABEL.switchyard, LABEL.router, "b/a", "b/c", "target"];
  const table = [
    `| ${header.join(" | ")} |`,
    `| ${header.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");

  const clientCpu = (k: Key) => f(at16(k)?.cpu.client ?? NaN, 0);
  // With keep-alive working, the Deno generator opens exactly one connection per connection slot and round.
  const reuse = r.client.generator === "deno"
    ? `; TCP connections it opened over the 16-connection rounds: ${
      KEYS.map((k) => at16(k)?.clientConnections ?? NaN).join(" / ")
    } (16 per round when keep-alive holds)`
    : "";
  const m = r.machine;
  const lines = [
    "## Switchyard bench",
    "",
    table,
    "",
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB RAM, ${m.os}; Deno ${m.deno} (V8 ${m.v8}); ` +
    `llama.cpp build_info ${JSON.stringify(r.buildInfo)}.`,
    `Engine flags for all three: \`${
      r.engine.flags.join(" ")
    }\`; model: tiny llama GGUF from tests/fixtures/gguf.ts.`,
    `Load average before / after: ${m.loadavgBefore} / ${m.loadavgAfter}.`,
    `Load generator: ${
      r.client.generator === "wrk"
        ? `${r.client.wrk} (-t1, Lua POST body)`
        : "the Deno raw-TCP keep-alive generator (bench/http_client.ts)"
    }` +
    (r.client.wrk ? "" : " — wrk is not installed (apt-get install -y wrk)") +
    `; its CPU at 16 connections: ${clientCpu("direct")}% / ${clientCpu("switchyard")}% / ${
      clientCpu("router")
    }% of one core (a / b / c)${reuse}.`,
    "Latency rows: one keep-alive connection per system, requests interleaved round-robin across the three systems; " +
    "the client is bench/http_client.ts (raw TCP), so its own overhead is the same small constant for all.",
    `Cold start: (a) spawn of llama-server → first streamed token of \`/completion\`; (b), (c) POST /models/unload, ` +
    `wait for \`unloaded\`, ${COLD_SETTLE_MS} ms pause, then a streamed \`/completion\` → first token.`,
    "The TIME_WAIT row counts closed gateway→engine connections (a lower bound, as the kernel recycles some): " +
    "llama-server closes a keep-alive connection after 100 requests (≈10 per 1k); llama.cpp's router opens one " +
    "per request, and answers its own clients with `Connection: close`, so they reconnect on every request too.",
    `Note: the engines, the gateway and the load generator all share these ${m.nproc} cores, so req/s at many ` +
    "connections is bounded by the CPU they split, not by any one process alone.",
  ];
  return lines.join("\n");
}

function target(ok: boolean, what: string): string {
  return `${ok ? "✅ met" : "❌ missed"}: ${what}`;
}

let code = 0;
try {
  await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  code = 1;
}
const ourDir = modelsDir;
const killed = await cleanup();
// Every llama-server and runner we started carried our models dir on its command line (or descends from one).
const still = ourDir ? pidsMatching(ourDir) : [];
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
Deno.exit(code);
