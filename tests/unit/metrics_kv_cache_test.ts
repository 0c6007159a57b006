/** `--swap-kv-cache`'s families read the store's totals at each scrape. */
import { Registry } from "prom-client";
import { assertEquals } from "../helpers/assert.ts";
import { registerKvCacheMetrics } from "../../router/metrics/kv_cache.ts";
import type { KvCacheStats } from "../../router/kvcache/port.ts";

Deno.test("kv cache metrics: each scrape shows the store's totals as they are then", async () => {
  const stats: KvCacheStats = {
    saves: 2,
    saveFailures: 1,
    restores: 1,
    restoreFailures: 0,
    restoredTokens: 3007,
    savedBytes: 4096,
    restoredBytes: 2048,
    evictions: 0,
    storedBytes: 4096,
  };
  const registry = new Registry();
  registerKvCacheMetrics(registry, () => stats);
  const lines = async () => (await registry.metrics()).split("\n").filter((l) => l && !l.startsWith("#"));
  assertEquals(await lines(), [
    'switchyard_kv_cache_saves_total{result="ok"} 2',
    'switchyard_kv_cache_saves_total{result="failed"} 1',
    'switchyard_kv_cache_restores_total{result="ok"} 1',
    'switchyard_kv_cache_restores_total{result="failed"} 0',
    "switchyard_kv_cache_restored_tokens_total 3007",
    'switchyard_kv_cache_bytes_total{direction="saved"} 4096',
    'switchyard_kv_cache_bytes_total{direction="restored"} 2048',
    "switchyard_kv_cache_evictions_total 0",
    "switchyard_kv_cache_stored_bytes 4096",
  ]);
  stats.restores = 2;
  stats.restoredTokens += 51;
  const again = await lines();
  assertEquals(again[2], 'switchyard_kv_cache_restores_total{result="ok"} 2');
  assertEquals(again[4], "switchyard_kv_cache_restored_tokens_total 3058");
});
