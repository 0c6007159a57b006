/**
 * What the gateway's metrics cost on the hot path, in the same run: two fresh Switchyards on the same
 * model folder, identical but for `--no-metrics`, so that neither carries what the bench's earlier
 * phases left in (b) (a grown heap, a full activity ring, engines' warm prompt caches). Latency
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
  mean,
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
  /** p50 on − off (ms) over `BLOCKS` consecutive blocks of the interleaved samples: the mean, ± 2 standard errors */
  latencyP50Change?: Record<"tokenize" | "completion" | "ttfc", Change<M>>;
  /** `/tokenize` load at this many connections, rounds alternating: mean req/s and gateway CPU µs per request */
  throughput: {
    connections: number;
    rounds: number;
    rps: Record<Switch, M>;
    gatewayCpuUsPerRequest: Record<Switch, M>;
    /** on − off relative to off, per pair of adjacent rounds: the mean, and two standard errors of it */
    rpsChange?: Change<M>;
    cpuChange?: Change<M>;
  };
}

export interface MetricsCostSetup {
  modelsDir: string;
  bin: string;
  engineFlags: string[];
  gatewayArgs: string[];
  client: LoadClient;
  samples: Samples;
}

/** A relative change over paired rounds: its mean and the half-width of its ~95% interval (2 standard errors). */
export interface Change<M extends Measure = Measure> {
  mean: M;
  twoSe: M;
}

/**
 * Pairs of load rounds, one on and one off back to back (in turns first): a machine's drift of
 * ±10% between seconds lands on both of a pair, and many pairs bound what is left of it.
 */
const PAIRS = 10;

/** Blocks the interleaved latency samples are cut into, in time order, for the noise of a p50 difference. */
const BLOCKS = 10;

/** The p50 of `on` minus that of `off`, block by block (the samples were taken in pairs, in order). */
function blockedP50Change(on: readonly number[], off: readonly number[]): Change<number> {
  const size = Math.floor(Math.min(on.length, off.length) / BLOCKS);
  const diffs: number[] = [];
  for (let b = 0; b < BLOCKS && size > 0; b++) {
    diffs.push(dist(on.slice(b * size, (b + 1) * size)).p50 - dist(off.slice(b * size, (b + 1) * size)).p50);
  }
  return changeOf(diffs);
}

/** The mean of `xs` and two standard errors of it. */
export function changeOf(xs: readonly number[]): Change<number> {
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const variance = n > 1 ? xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : NaN;
  return { mean, twoSe: 2 * Math.sqrt(variance / n) };
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
  log("metrics on vs off: starting two fresh Switchyards, one with --no-metrics");
  const started: Partial<Record<Switch, TestGateway>> = {};
  const stopAll = () => Promise.all(Object.values(started).map((gw) => gw.stop()));
  owner.add(stopAll);
  try {
    for (const mode of SWITCHES) {
      const gw = started[mode] = await startGateway({
        args: [
          "--models-dir",
          setup.modelsDir,
          ...setup.engineFlags,
          ...setup.gatewayArgs,
          ...(mode === "off" ? ["--no-metrics"] : []),
        ],
        env: { LLAMA_SERVER_BIN: setup.bin },
      });
      const first = await postJson(`${gw.url}/tokenize`, tokenizeBody);
      if (!first.ok) {
        throw new Error(`metrics ${mode}: first request failed: ${first.status} ${await first.text()}`);
      }
      await first.body?.cancel();
    }
    const gateways = SWITCHES.map((mode) => gatewayOf(started[mode]!, mode));
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

    const pairs = N.rounds === 1 ? 2 : PAIRS;
    log(
      `metrics on vs off: /tokenize at ${CONNECTIONS} connections, ${pairs} pairs of ${N.roundMs} ms rounds`,
    );
    const load = (g: Gateway, i: number, ms: number) =>
      loadOnce(g, { gateway: g.frontPid }, CONNECTIONS, setup.client, ports[i], ms);
    // both fresh: the same warm-up under load as the main systems had, so the rounds compare steady states
    for (const [i, g] of gateways.entries()) await load(g, i, N.steadyWarmupMs);
    const rounds = { on: [] as number[][], off: [] as number[][] };
    for (let r = 0; r < pairs; r++) {
      for (let j = 0; j < gateways.length; j++) {
        const i = (r + j) % gateways.length;
        const round = await load(gateways[i], i, N.roundMs);
        rounds[gateways[i].mode].push([round.rps, round.cpuUsPerRequest.gateway]);
      }
    }
    const per = (pick: (round: number[]) => number) =>
      Object.fromEntries(SWITCHES.map((m) => [m, mean(rounds[m].map(pick))])) as Record<Switch, number>;
    const paired = (pick: (round: number[]) => number) =>
      changeOf(rounds.on.map((on, k) => pick(on) / pick(rounds.off[k]) - 1));
    const result: MetricsCost<number> = {
      latencyP50Change: {
        tokenize: blockedP50Change(tokenize.on, tokenize.off),
        completion: blockedP50Change(completion.on, completion.off),
        ttfc: blockedP50Change(ttfc.on, ttfc.off),
      },
      latencyMs: {
        tokenize: { on: dist(tokenize.on), off: dist(tokenize.off) },
        completion: { on: dist(completion.on), off: dist(completion.off) },
        ttfc: { on: dist(ttfc.on), off: dist(ttfc.off) },
      },
      throughput: {
        connections: CONNECTIONS,
        rounds: pairs,
        rps: per((x) => x[0]),
        gatewayCpuUsPerRequest: per((x) => x[1]),
        rpsChange: paired((x) => x[0]),
        cpuChange: paired((x) => x[1]),
      },
    };
    log(
      `  metrics on / off: tokenize p50 ${result.latencyMs.tokenize.on.p50.toFixed(3)} / ${
        result.latencyMs.tokenize.off.p50.toFixed(3)
      } ms, ${result.throughput.rps.on.toFixed(0)} / ${result.throughput.rps.off.toFixed(0)} req/s`,
    );
    return result;
  } finally {
    await stopAll();
  }
}
