/**
 * The floor for a proxy on Deno: one streamed `/v1/completions` at a time on a kept-alive connection, its
 * first event, through two bare relays (bench/bare_relay.ts) in front of (a)'s engine, against (a) itself,
 * Switchyard and llama.cpp's router. What a bare `Deno.serve` relay adds is what no proxy on this runtime
 * can take out on this machine; the Hono relay adds the skeleton of Switchyard's path; the rest of
 * Switchyard's figure is its own work. Samples go round-robin across the five.
 */
import { encodeRequest, HttpConnection } from "./http_client.ts";
import { spread } from "./latency.ts";
import { type Server, spawnServer, waitHealthy } from "./procs.ts";
import type { Measure, Spread } from "./results.ts";
import { streamBody, streamed } from "./streaming.ts";
import { log, type System } from "./systems.ts";
import type { RelayMode } from "./bare_relay.ts";
import { GATEWAY_V8_FLAGS } from "../tests/helpers/gateway.ts";

export const FLOOR_KEYS = ["direct", "bareDeno", "bareHono", "switchyard", "router"] as const;
export type FloorKey = typeof FLOOR_KEYS[number];

export interface FloorResults<M extends Measure = Measure> {
  /** the request: a streamed `/v1/completions` of this many tokens */
  maxTokens: number;
  /** request written → first event, one kept-alive connection per system */
  keptMs: Record<FloorKey, Spread<M>>;
}

export interface FloorSetup {
  /** (a), whose engine the bare relays stand in front of */
  direct: System;
  switchyard: System;
  router: System;
  streams: number;
  streamTokens: number;
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
  try {
    // one unmeasured round warms the relays' code and sockets up
    for (let round = -1; round < setup.streams; round++) {
      for (let j = 0; j < FLOOR_KEYS.length; j++) {
        const i = (Math.max(round, 0) + j) % FLOOR_KEYS.length;
        const ex = streamed(await conns[i].request(reqs[i], true), `floor stream on ${FLOOR_KEYS[i]}`);
        if (round >= 0) samples[i].push(ex.firstBodyMs);
      }
    }
  } finally {
    conns.forEach((c) => c.close());
    await Promise.all(Object.values(relays).map((r) => r.stop()));
  }
  const keptMs = Object.fromEntries(FLOOR_KEYS.map((k, i) => [k, spread(samples[i])])) as Record<
    FloorKey,
    Spread<number>
  >;
  for (const k of FLOOR_KEYS) log(`  ${k}: first event p50 ${keptMs[k].p50.toFixed(3)} ms`);
  return { maxTokens: setup.streamTokens, keptMs };
}
