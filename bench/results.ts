/** What a run measured, in the shape `bench/results/latest.json` stores and the report reads. */
import type { Samples } from "./options.ts";
import type { MachineInfo } from "./procs.ts";

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
