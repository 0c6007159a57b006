/** Throughput: closed-loop `/tokenize` load at each connection count, with the CPU every process spent on it. */
import { encodeRequest, type LoadResult, runLoad } from "./http_client.ts";
import type { LoadClient, Samples } from "./options.ts";
import { CpuMeter, tcpStates } from "./procs.ts";
import type { Key, Measure, Throughput } from "./results.ts";
import { log, median, perSystem, type System, tokenizeBody } from "./systems.ts";
import { runWrk } from "./wrk.ts";

/** Edges of a load run left out of CPU sampling: connection set-up and the requests in flight at the end. */
const CPU_EDGE_MS = 250;

/** Roles whose CPU is watched during load: which pid does what, per system. */
export type Roles = Record<string, number>;

type Round = Throughput<number> & { requests: number; timeWaits: number };

/** One system under load once: `durationMs` of closed-loop /tokenize requests on `connections` connections. */
export async function loadOnce(
  sys: Pick<System, "port" | "url">,
  roles: Roles,
  connections: number,
  client: LoadClient,
  enginePort: number,
  durationMs: number,
): Promise<Round> {
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

/** What the load phases run on: the systems, whose pids do what, the load generator and the sample counts. */
export interface LoadPlan {
  systems: System[];
  roles: Record<Key, Roles>;
  client: LoadClient;
  /** each system's engine port, where closed upstream sockets are counted */
  enginePort: Record<Key, number>;
  samples: Samples;
}

/** What each system did during the steady-state warm-up: its first seconds of load in this run. */
export interface SteadyWarmup<M extends Measure = Measure> {
  ms: number;
  connections: number;
  rps: Record<Key, M>;
  /** CPU µs per request of the front process (engine, gateway, router) */
  frontCpuUs: Record<Key, M>;
}

/** The roles that answer the clients: the engine for (a), the gateway, the router. */
export const FRONT_ROLE: Record<Key, string> = { direct: "engine", switchyard: "gateway", router: "router" };

/**
 * The first `steadyWarmupMs` of load at 16 connections for each system, before any measured load round;
 * kept, so the report can say what the first seconds cost before V8 had optimized the gateway's path.
 */
export async function steadyWarmup(
  { systems, roles, client, enginePort, samples }: LoadPlan,
): Promise<SteadyWarmup<number>> {
  const C = 16;
  log(`warm-up under load: /tokenize at ${C} connections for ${samples.steadyWarmupMs} ms per system`);
  const rps = perSystem(() => NaN);
  const frontCpuUs = perSystem(() => NaN);
  for (const s of systems) {
    const t = await loadOnce(s, roles[s.key], C, client, enginePort[s.key], samples.steadyWarmupMs);
    rps[s.key] = t.rps;
    frontCpuUs[s.key] = t.cpuUsPerRequest[FRONT_ROLE[s.key]];
    log(`  ${s.key}: ${t.rps.toFixed(0)} req/s, front ${frontCpuUs[s.key].toFixed(0)} µs per request`);
  }
  return { ms: samples.steadyWarmupMs, connections: C, rps, frontCpuUs };
}

/**
 * Throughput at each connection count: every system is warmed up, then measured in `samples.rounds` short
 * rounds that alternate between the systems, so a burst of background load on the shared machine lands on all
 * of them rather than on whichever happened to run then. Per-round figures are averaged.
 */
export async function throughputAll(
  { systems, roles, client, enginePort, samples }: LoadPlan,
): Promise<Record<Key, Throughput<number>[]>> {
  const out = perSystem((): Throughput<number>[] => []);
  for (const c of samples.connections) {
    for (const s of systems) {
      await loadOnce(s, roles[s.key], c, client, enginePort[s.key], samples.loadWarmupMs);
    }
    const rounds = perSystem((): Round[] => []);
    for (let r = 0; r < samples.rounds; r++) {
      for (let j = 0; j < systems.length; j++) {
        const s = systems[(r + j) % systems.length];
        rounds[s.key].push(await loadOnce(s, roles[s.key], c, client, enginePort[s.key], samples.roundMs));
      }
    }
    for (const s of systems) {
      const t = summarize(s.key, c, client, rounds[s.key]);
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

/** One system's rounds at one connection count, as one figure each. */
function summarize(key: Key, connections: number, client: LoadClient, rs: Round[]): Throughput<number> {
  const mean = (f: (t: Round) => number) => rs.reduce((a, t) => a + f(t), 0) / rs.length;
  const roleNames = Object.keys(rs[0].cpu);
  const requests = rs.reduce((a, t) => a + t.requests, 0);
  return {
    connections,
    rps: mean((t) => t.rps),
    rpsRounds: rs.map((t) => t.rps),
    p50Ms: median(rs.map((t) => t.p50Ms)),
    p99Ms: mean((t) => t.p99Ms),
    errors: rs.reduce((a, t) => a + t.errors, 0),
    cpu: Object.fromEntries(roleNames.map((k) => [k, mean((t) => t.cpu[k])])),
    cpuUsPerRequest: Object.fromEntries(roleNames.map((k) => [k, mean((t) => t.cpuUsPerRequest[k])])),
    // The direct engine's port sees only the client's own connections; the routers' engines see upstream ones.
    upstreamClosesPer1k: key === "direct"
      ? undefined
      : (rs.reduce((a, t) => a + t.timeWaits, 0) / Math.max(1, requests)) * 1000,
    clientConnections: client === "deno" ? rs.reduce((a, t) => a + (t.clientConnections ?? 0), 0) : undefined,
  };
}

function fmtCpu(cpu: Record<string, number>): string {
  return Object.entries(cpu).map(([k, v]) => `${k} ${v.toFixed(0)}%`).join(", ");
}
