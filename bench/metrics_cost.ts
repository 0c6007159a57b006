/**
 * What the gateway's metrics cost on the hot path, in the same run: a second Switchyard with
 * `--no-metrics` on the same model folder beside (b), which runs with metrics on as by default. Latency
 * samples go round-robin across the two on one kept-alive connection each, and `/tokenize` load rounds
 * alternate between them, so that background load on the machine lands on both alike. With metrics on,
 * every proxied request is tapped (router/metrics/tap.ts), its answer's tokens counted, and it joins the
 * activity ring.
 */
import { startGateway, type TestGateway } from "../tests/helpers/gateway.ts";
import { encodeRequest } from "./http_client.ts";
import { dist, interleaved } from "./latency.ts";
import type { LoadClient, Samples } from "./options.ts";
import type { Dist, Measure } from "./results.ts";
import type { Owner } from "./swap.ts";
import {
  chatStreamBody,
  completionBody,
  getJson,
  log,
  MODEL,
  postJson,
  type System,
  tokenizeBody,
} from "./systems.ts";
import { loadOnce } from "./throughput.ts";

export type Switch = "on" | "off";
const SWITCHES: readonly Switch[] = ["on", "off"];

export interface MetricsCost<M extends Measure = Measure> {
  latencyMs: Record<"tokenize" | "completion" | "ttfc", Record<Switch, Dist<M>>>;
  /** `/tokenize` load at this many connections, rounds alternating: mean req/s and gateway CPU µs per request */
  throughput: {
    connections: number;
    rounds: number;
    rps: Record<Switch, M>;
    gatewayCpuUsPerRequest: Record<Switch, M>;
  };
}

export interface MetricsCostSetup {
  /** (b), metrics on */
  on: TestGateway;
  modelsDir: string;
  bin: string;
  engineFlags: string[];
  gatewayArgs: string[];
  client: LoadClient;
  samples: Samples;
}

/** Connections of the load rounds: the bench's per-request CPU figures are read at 16 too. */
const CONNECTIONS = 16;

interface Gateway extends System {
  mode: Switch;
}

function gatewayOf(gw: TestGateway, mode: Switch): Gateway {
  return { key: "switchyard", mode, port: Number(new URL(gw.url).port), url: gw.url, frontPid: gw.pid };
}

/** The port of the engine `url`'s gateway runs the bench's model on, from its `/models` (status.args). */
async function enginePort(url: string): Promise<number> {
  const list = await getJson(`${url}/models`) as { data: { id: string; status: { args: string[] } }[] };
  const args = list.data.find((m) => m.id === MODEL)?.status.args ?? [];
  return Number(args[args.indexOf("--port") + 1]);
}

export async function measureMetricsCost(
  setup: MetricsCostSetup,
  owner: Owner,
): Promise<MetricsCost<number>> {
  const N = setup.samples;
  log("metrics on vs off: starting a second Switchyard with --no-metrics");
  const off = await startGateway({
    args: ["--models-dir", setup.modelsDir, ...setup.engineFlags, ...setup.gatewayArgs, "--no-metrics"],
    env: { LLAMA_SERVER_BIN: setup.bin },
  });
  owner.add(() => off.stop());
  try {
    const first = await postJson(`${off.url}/tokenize`, tokenizeBody);
    if (!first.ok) {
      throw new Error(`--no-metrics: first request failed: ${first.status} ${await first.text()}`);
    }
    await first.body?.cancel();
    const gateways = [gatewayOf(setup.on, "on"), gatewayOf(off, "off")];
    const ports = await Promise.all(gateways.map((g) => enginePort(g.url)));
    // keyed by mode for the latency samples
    const byMode = gateways.map((g) => ({ key: g.mode, port: g.port }));
    const tok = (g: { port: number }) => encodeRequest("POST", g.port, "/tokenize", tokenizeBody);
    const comp = (g: { port: number }) => encodeRequest("POST", g.port, "/completion", completionBody);
    const chat = (g: { port: number }) =>
      encodeRequest("POST", g.port, "/v1/chat/completions", chatStreamBody);
    await interleaved(byMode, tok, N.warmup, (e) => e.totalMs, "metrics warm-up");
    log(`metrics on vs off: ${N.tokenize} tokenize, ${N.completion} completions, ${N.ttfc} streams each`);
    const tokenize = await interleaved(byMode, tok, N.tokenize, (e) => e.totalMs, "metrics tokenize");
    const completion = await interleaved(byMode, comp, N.completion, (e) => e.totalMs, "metrics completion");
    const ttfc = await interleaved(byMode, chat, N.ttfc, (e) => e.firstBodyMs, "metrics stream");

    log(`metrics on vs off: /tokenize at ${CONNECTIONS} connections, ${N.rounds} × ${N.roundMs} ms each`);
    const load = (g: Gateway, i: number, ms: number) =>
      loadOnce(g, { gateway: g.frontPid }, CONNECTIONS, setup.client, ports[i], ms);
    for (const [i, g] of gateways.entries()) await load(g, i, N.loadWarmupMs);
    const rounds = { on: [] as number[][], off: [] as number[][] };
    for (let r = 0; r < N.rounds; r++) {
      for (let j = 0; j < gateways.length; j++) {
        const i = (r + j) % gateways.length;
        const round = await load(gateways[i], i, N.roundMs);
        rounds[gateways[i].mode].push([round.rps, round.cpuUsPerRequest.gateway]);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    const per = (pick: (round: number[]) => number) =>
      Object.fromEntries(SWITCHES.map((m) => [m, mean(rounds[m].map(pick))])) as Record<Switch, number>;
    const result: MetricsCost<number> = {
      latencyMs: {
        tokenize: { on: dist(tokenize.on), off: dist(tokenize.off) },
        completion: { on: dist(completion.on), off: dist(completion.off) },
        ttfc: { on: dist(ttfc.on), off: dist(ttfc.off) },
      },
      throughput: {
        connections: CONNECTIONS,
        rounds: N.rounds,
        rps: per((x) => x[0]),
        gatewayCpuUsPerRequest: per((x) => x[1]),
      },
    };
    log(
      `  metrics on / off: tokenize p50 ${result.latencyMs.tokenize.on.p50.toFixed(3)} / ${
        result.latencyMs.tokenize.off.p50.toFixed(3)
      } ms, ${result.throughput.rps.on.toFixed(0)} / ${result.throughput.rps.off.toFixed(0)} req/s`,
    );
    return result;
  } finally {
    await off.stop();
  }
}
