/**
 * What the scheduler asks of the KV cache store (`SchedulerOptions.kvCache`): the engine options a
 * model needs, a save when it is stopped on purpose, a restore when it is loaded again; and what
 * `/models` and the metrics read of it (`summary`, `stats`). The scheduler decides when (policy.ts) and
 * bounds how long (`timeoutMs`); the store does the I/O. Every method settles and none rejects: a
 * failed save or restore is the store's to log, and the model goes on without it.
 */
import type { OptionMap } from "../flags/flags.ts";
import type { ModelSpec } from "../sources/types.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";

/** A running engine whose slots are saved or restored. */
export interface KvCacheTarget {
  modelId: string;
  /** the launch it runs: its key is read from it */
  launch: EngineLaunch;
  port: number;
}

/** A model's saved cache, as `/models` shows it (`status.kv_cache`). */
export interface KvCacheSummary {
  tokens: number;
  bytes: number;
  slots: number;
  /** ms since the epoch */
  savedAt: number;
}

/** Counters since the store was opened, for the gateway's metrics. */
export interface KvCacheStats {
  /** model stops that saved at least one slot */
  saves: number;
  saveFailures: number;
  /** model loads that restored at least one slot */
  restores: number;
  restoreFailures: number;
  /** prompt tokens put back by restores: prefill the engines did not have to do again */
  restoredTokens: number;
  savedBytes: number;
  restoredBytes: number;
  /** saved caches deleted to stay within `--swap-kv-cache-max` */
  evictions: number;
  /** what the saved caches hold on disk now */
  storedBytes: number;
}

export interface KvCachePort {
  /** how long a save or a restore may take; after that the stop or the load goes on without it */
  readonly timeoutMs: number;
  /** whether the model's cache is kept across stops (`--swap-kv-cache`, the preset's `swap-kv-cache`) */
  enabledFor(spec: ModelSpec): boolean;
  /** the options its engine needs for that (`--slot-save-path`) */
  engineOptions(spec: ModelSpec): OptionMap;
  /** makes its folder before its engine starts (llama-server refuses a missing one) */
  prepare(spec: ModelSpec): Promise<void>;
  /** saves every slot that holds a prompt; gives up when `signal` aborts */
  save(target: KvCacheTarget, signal: AbortSignal): Promise<void>;
  /** restores what was saved under the launch's key, if anything; gives up when `signal` aborts */
  restore(target: KvCacheTarget, signal: AbortSignal): Promise<void>;
  /** deletes the model's saved caches (`DELETE /models`) */
  discard(modelId: string): Promise<void>;
  summary(modelId: string): KvCacheSummary | undefined;
  /** the counters, for the gateway's metrics */
  stats(): KvCacheStats;
}
