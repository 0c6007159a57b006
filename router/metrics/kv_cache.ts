/**
 * `--swap-kv-cache`'s counters on the gateway's page. The store keeps its own totals
 * (router/kvcache/port.ts); these families read them when a scrape asks, so saving and restoring
 * carry no metrics code of their own.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { KvCacheStats } from "../kvcache/port.ts";

/** Registers the KV cache families in `registry`, reading `stats` at each scrape. */
export function registerKvCacheMetrics(registry: Registry, stats: () => KvCacheStats): void {
  const registers = [registry];
  const counter = (
    name: string,
    help: string,
    read: (s: KvCacheStats) => [Record<string, string>, number][],
    labelNames: string[] = [],
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [labels, value] of read(stats())) this.inc(labels, value);
      },
    });
  counter(
    "switchyard_kv_cache_saves_total",
    "Model stops that saved their engine's KV cache (ok), or tried and failed",
    (s) => [[{ result: "ok" }, s.saves], [{ result: "failed" }, s.saveFailures]],
    ["result"],
  );
  counter(
    "switchyard_kv_cache_restores_total",
    "Model loads that restored a saved KV cache (ok), or tried and failed",
    (s) => [[{ result: "ok" }, s.restores], [{ result: "failed" }, s.restoreFailures]],
    ["result"],
  );
  counter(
    "switchyard_kv_cache_restored_tokens_total",
    "Prompt tokens put back by restores: prefill the engines did not do again",
    (s) => [[{}, s.restoredTokens]],
  );
  counter(
    "switchyard_kv_cache_bytes_total",
    "Bytes of KV cache written by saves and read by restores",
    (s) => [[{ direction: "saved" }, s.savedBytes], [{ direction: "restored" }, s.restoredBytes]],
    ["direction"],
  );
  counter(
    "switchyard_kv_cache_evictions_total",
    "Saved caches deleted to stay within --swap-kv-cache-max",
    (s) => [[{}, s.evictions]],
  );
  new Gauge({
    name: "switchyard_kv_cache_stored_bytes",
    help: "What the saved KV caches hold on disk now",
    registers,
    collect() {
      this.set(stats().storedBytes);
    },
  });
}
