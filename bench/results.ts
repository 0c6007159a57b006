/** What a run measured, in the shape `bench/results/latest.json` stores and the report reads. */
import type { FloorResults } from "./floor.ts";
import type { MetricsCost } from "./metrics_cost.ts";
import type { Samples } from "./options.ts";
import type { MachineInfo } from "./procs.ts";
import type { SteadyWarmup } from "./throughput.ts";

export type Key = "direct" | "switchyard" | "router";
export const KEYS: readonly Key[] = ["direct", "switchyard", "router"];

/**
 * JSON has no NaN or Infinity, so a figure with nothing behind it (a skipped phase, no samples, a process
 * already gone) is stored as null. Results being measured use `number` (`M = number`), stored ones `Measure`.
 */
export type Measure = number | null;

export interface Dist<M extends Measure = Measure> {
  p50: M;
  p99: M;
  mean: M;
  n: number;
}

export interface Throughput<M extends Measure = Measure> {
  connections: number;
  /** mean over the rounds */
  rps: M;
  rpsRounds: M[];
  p50Ms: M;
  p99Ms: M;
  errors: number;
  /** CPU over the measured window, % of one core, per role */
  cpu: Record<string, M>;
  /** CPU µs per answered request, per role */
  cpuUsPerRequest: Record<string, M>;
  /** loopback sockets to the engine's port that went to TIME_WAIT during the run, per 1000 requests */
  upstreamClosesPer1k?: M;
  /** generator's TCP connections (Deno generator only) */
  clientConnections?: number;
}

export interface ColdStart<M extends Measure = Measure> {
  median: M;
  min: M;
  max: M;
  samples: number[];
}

/** Nearest-rank percentiles of `n` samples. */
export interface Spread<M extends Measure = Measure> {
  p50: M;
  p90: M;
  n: number;
}

/** `--models-max 1`, requests alternating between two models of different sizes: every request is a swap. */
export interface SwapResults<M extends Measure = Measure> {
  /** the two models, by name and file size */
  models: { name: string; mib: number }[];
  /**
   * Request sent → 1-token answer, the other model evicted on the way: (a) SIGTERM to the running engine,
   * its exit, the other one spawned and answering; (b), (c) one request to the router in front.
   */
  answerMs: Record<Key, Spread<M>>;
  /** Switchyard's stops of the evicted engines, read from its log (see swap.ts) */
  switchyardStop: {
    /** stops of an engine that had answered, measured or not (the spreads' `n` counts those measured) */
    stops: number;
    /** the gateway's clock alone: its "evicting <id>" → its "<id> stopped" */
    evictToStoppedMs: Spread<M>;
    /** the engine's own clock: "exit command received" → its last line ("cleaning up before exit") */
    engineExitMs: Spread<M>;
    /** the engine's last line → the gateway's "<id> stopped": the stop reported, ≈ from the exit */
    reportedMs: Spread<M>;
    /** "exit command received" → "<id> stopped": the two above together */
    exitCommandToStoppedMs: Spread<M>;
  };
}

/** Concurrent streams started together, each read to its end; rounds interleaved across the systems. */
export interface ConcurrentStreams<M extends Measure = Measure> {
  streams: number;
  rounds: number;
  /** median over every stream of every round of request written → first event */
  ttfcP50Ms: Record<Key, M>;
  /** SSE events relayed per second over the rounds (first request written → last stream ended) */
  chunksPerS: Record<Key, M>;
  /** CPU µs per relayed event, per role (client included) */
  cpuUsPerChunk: Record<Key, Record<string, M>>;
}

export interface StreamingResults<M extends Measure = Measure> {
  /** the request: a streamed `/v1/completions` of this many tokens */
  maxTokens: number;
  /** one stream at a time on a new TCP connection: connect → first event */
  freshMs: Record<Key, Spread<M>>;
  /** one stream at a time on one kept-alive connection per system: request written → first event */
  keptMs: Record<Key, Spread<M>>;
  /** TCP connections the kept-alive samples needed (1 unless the server closes them) */
  keptConnections: Record<Key, number>;
  concurrent: ConcurrentStreams<M>[];
}

/** One process's footprint in KiB (procs.ts `Footprint`), null where it was gone. */
export interface StoredFootprint<M extends Measure = Measure> {
  rssKiB: M;
  pssKiB: M;
  privateKiB: M;
}

export interface ProcessMemory<M extends Measure = Measure> {
  system: Key;
  /** gateway, runner, spare runner, engine, router */
  role: string;
  idle: StoredFootprint<M>;
  /** the peak of each figure over samples taken during the load */
  load: StoredFootprint<M>;
}

export interface MemoryResults<M extends Measure = Measure> {
  /** the load: `/tokenize` at this many connections for this long, per system, with samples every `everyMs` */
  connections: number;
  loadMs: number;
  everyMs: number;
  processes: ProcessMemory<M>[];
}

export interface BenchResults<M extends Measure = Measure> {
  date: string;
  machine: Omit<MachineInfo, "memGiB"> & { memGiB: M; loadavgBefore: string; loadavgAfter: string };
  engine: { bin: string; flags: string[]; buildInfo: unknown };
  /** llama.cpp's `build_info` from each system's `GET /props` */
  buildInfo: Partial<Record<Key, unknown>>;
  client: { generator: "wrk" | "deno"; wrk: string | null };
  samples: Samples;
  latencyMs: Record<"tokenize" | "completion" | "ttfc", Record<Key, Dist<M>>>;
  coldStartMs: Record<Key, ColdStart<M>>;
  throughput: Record<Key, Throughput<M>[]>;
  rssKiB: {
    direct: { engine: Measure };
    switchyard: {
      gateway: Measure;
      runner: Measure;
      spareRunners: Measure[];
      engine: Measure;
      gatewayIdle: Measure;
      runnerIdle: Measure;
    };
    router: { router: Measure; engine: Measure };
  };
  /** absent in runs that skipped the phase (and in runs from before it existed) */
  streaming?: StreamingResults<M>;
  /** the first seconds of load, before the floor, throughput and memory rows (absent in older runs) */
  steadyWarmup?: SteadyWarmup<M>;
  /** one stream at a time through bare Deno relays, beside the three systems (bench/floor.ts) */
  floor?: FloorResults<M>;
  swap?: SwapResults<M>;
  memory?: MemoryResults<M>;
  /** (b) with metrics on against a second Switchyard with `--no-metrics`, in the same run */
  metricsCost?: MetricsCost<M>;
}

/**
 * The results as they are stored: every number rounded to 3 decimals, so the committed JSON stays small and
 * diffable, and non-finite ones null. The report is rendered from this, not from the unrounded figures, so
 * that `latest.md` is exactly what `renderReport` makes of `latest.json`.
 */
export function toStored(results: BenchResults<number>): BenchResults {
  return round(results) as BenchResults;
}

function round(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : null;
  if (Array.isArray(value)) return value.map(round);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, round(v)]));
  }
  return value;
}
