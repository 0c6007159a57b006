/**
 * The floor for a proxy on Deno: one streamed `/v1/completions` at a time on a kept-alive connection, its
 * first event, through two bare relays (bench/bare_relay.ts) in front of (a)'s engine, against (a) itself,
 * Switchyard and llama.cpp's router. What a bare `Deno.serve` relay adds is what no proxy on this runtime
 * can take out on this machine; the Hono relay adds the skeleton of Switchyard's path; the rest of
 * Switchyard's figure is its own work. Samples go round-robin across the five.
 *
 * The same five then take the throughput row's load (`/tokenize` at 16 connections) in alternating rounds:
 * req/s, the front process's CPU per request, and its footprint idle and at its peak under that load, so the
 * throughput and memory targets have a floor beside them too.
 */
import { encodeRequest, HttpConnection } from "./http_client.ts";
import { spread } from "./latency.ts";
import { GONE, raisingPeaks } from "./memory.ts";
import type { LoadClient } from "./options.ts";
import { footprint, type Server, spawnServer, waitHealthy } from "./procs.ts";
import type { Measure, Spread, StoredFootprint } from "./results.ts";
import { streamBody, streamed } from "./streaming.ts";
import { log, mean, median, type System } from "./systems.ts";
import { loadOnce } from "./throughput.ts";
import type { RelayMode } from "./bare_relay.ts";
import { GATEWAY_V8_FLAGS } from "../tests/helpers/gateway.ts";

export const FLOOR_KEYS = ["direct", "bareDeno", "bareHono", "switchyard", "router"] as const;
export type FloorKey = typeof FLOOR_KEYS[number];

/** The throughput row's load: closed-loop `/tokenize` on this many connections. */
export const FLOOR_LOAD_CONNECTIONS = 16;

/** One front process (the engine for (a), a relay, the gateway, the router) under the load. */
export interface FloorLoad<M extends Measure = Measure> {
  /** mean over the rounds */
  rps: M;
  rpsRounds: M[];
  /** CPU µs per answered request of the front process alone, the median over the rounds */
  frontCpuUs: M;
  /** before this phase's load, after the streams above */
  idle: StoredFootprint<M>;
  /** the peak of each figure over samples during its own rounds */
  peak: StoredFootprint<M>;
}

export interface FloorResults<M extends Measure = Measure> {
  /** the request: a streamed `/v1/completions` of this many tokens */
  maxTokens: number;
  /** request written → first event, one kept-alive connection per system */
  keptMs: Record<FloorKey, Spread<M>>;
  /** absent in runs from before it was measured */
  load?: {
    connections: number;
    rounds: number;
    roundMs: number;
    front: Record<FloorKey, FloorLoad<M>>;
  };
}

export interface FloorSetup {
  /** (a), whose engine the bare relays stand in front of */
  direct: System;
  switchyard: System;
  router: System;
  streams: number;
  streamTokens: number;
  client: LoadClient;
  loadWarmupMs: number;
  /** the relays start fresh here, so they get the warm-up the three systems had before this phase */
  steadyWarmupMs: number;
  rounds: number;
  roundMs: number;
  memoryEveryMs: number;
  /** registers a stop for each relay started */
  onStarted: (stop: () => Promise<unknown>) => void;
}

function startRelay(enginePort: number, mode: RelayMode, onStarted: FloorSetup["onStarted"]): Server {
  const script = new URL("./bare_relay.ts", import.meta.url).pathname;
  const relay = spawnServer(Deno.execPath(), [
    "run",
    "-A",
    GATEWAY_V8_FLAGS,
    script,
    "--engine-port",
    String(enginePort),
    "--mode",
    mode,
  ]);
  onStarted(() => relay.stop());
  return relay;
}

export async function measureFloor(setup: FloorSetup): Promise<FloorResults<number>> {
  log(
    `floor: ${setup.streams} kept-alive streams per system, through bare Deno relays and the three systems`,
  );
  const relays = {
    bareDeno: startRelay(setup.direct.port, "deno", setup.onStarted),
    bareHono: startRelay(setup.direct.port, "hono", setup.onStarted),
  };
  for (const r of Object.values(relays)) await waitHealthy(`${r.url}/health`, r, 60_000);
  const ports: Record<FloorKey, number> = {
    direct: setup.direct.port,
    bareDeno: relays.bareDeno.port,
    bareHono: relays.bareHono.port,
    switchyard: setup.switchyard.port,
    router: setup.router.port,
  };
  const conns = FLOOR_KEYS.map((k) => new HttpConnection(ports[k]));
  const reqs = FLOOR_KEYS.map((k) =>
    encodeRequest("POST", ports[k], "/v1/completions", streamBody(setup.streamTokens))
  );
  const samples = FLOOR_KEYS.map((): number[] => []);
  const pids: Record<FloorKey, number> = {
    direct: setup.direct.frontPid,
    bareDeno: relays.bareDeno.pid,
    bareHono: relays.bareHono.pid,
    switchyard: setup.switchyard.frontPid,
    router: setup.router.frontPid,
  };
  let load: FloorResults<number>["load"];
  try {
    // one unmeasured round warms the relays' code and sockets up
    for (let round = -1; round < setup.streams; round++) {
      for (let j = 0; j < FLOOR_KEYS.length; j++) {
        const i = (Math.max(round, 0) + j) % FLOOR_KEYS.length;
        const ex = streamed(await conns[i].request(reqs[i], true), `floor stream on ${FLOOR_KEYS[i]}`);
        if (round >= 0) samples[i].push(ex.firstBodyMs);
      }
    }
    load = await measureLoad(ports, pids, setup);
  } finally {
    conns.forEach((c) => c.close());
    await Promise.all(Object.values(relays).map((r) => r.stop()));
  }
  const keptMs = Object.fromEntries(FLOOR_KEYS.map((k, i) => [k, spread(samples[i])])) as Record<
    FloorKey,
    Spread<number>
  >;
  for (const k of FLOOR_KEYS) log(`  ${k}: first event p50 ${keptMs[k].p50.toFixed(3)} ms`);
  return { maxTokens: setup.streamTokens, keptMs, load };
}

/**
 * Each front warmed up, then `rounds` rounds of the load in turns, each starting with the next one; a front's
 * footprint is sampled during its own rounds only, as the engine behind (a) also serves the relays.
 */
async function measureLoad(
  ports: Record<FloorKey, number>,
  pids: Record<FloorKey, number>,
  setup: FloorSetup,
): Promise<NonNullable<FloorResults<number>["load"]>> {
  const C = FLOOR_LOAD_CONNECTIONS;
  log(`floor: /tokenize at ${C} connections, ${setup.rounds} × ${setup.roundMs} ms per system, in turns`);
  const target = (k: FloorKey) => ({ port: ports[k], url: `http://127.0.0.1:${ports[k]}` });
  const once = (k: FloorKey, ms: number) =>
    loadOnce(target(k), { front: pids[k] }, C, setup.client, setup.direct.port, ms);
  const idle = FLOOR_KEYS.map((k) => footprint(pids[k]) ?? GONE);
  const peak = [...idle];
  const rps = FLOOR_KEYS.map((): number[] => []);
  const cpuUs = FLOOR_KEYS.map((): number[] => []);
  for (const k of FLOOR_KEYS) {
    await once(k, k === "bareDeno" || k === "bareHono" ? setup.steadyWarmupMs : setup.loadWarmupMs);
  }
  for (let r = 0; r < setup.rounds; r++) {
    for (let j = 0; j < FLOOR_KEYS.length; j++) {
      const i = (r + j) % FLOOR_KEYS.length;
      const k = FLOOR_KEYS[i];
      const peaks = [peak[i]];
      const round = await raisingPeaks([pids[k]], peaks, setup.memoryEveryMs, () => once(k, setup.roundMs));
      peak[i] = peaks[0];
      rps[i].push(round.rps);
      cpuUs[i].push(round.cpuUsPerRequest.front);
    }
  }
  const front = Object.fromEntries(FLOOR_KEYS.map((k, i) => {
    const rate = mean(rps[i]);
    log(`  ${k}: ${rate.toFixed(0)} req/s, front ${median(cpuUs[i]).toFixed(0)} µs per request`);
    return [k, { rps: rate, rpsRounds: rps[i], frontCpuUs: median(cpuUs[i]), idle: idle[i], peak: peak[i] }];
  })) as Record<FloorKey, FloorLoad<number>>;
  return { connections: C, rounds: setup.rounds, roundMs: setup.roundMs, front };
}
