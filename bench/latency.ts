/** Latency samples: one keep-alive connection per system, requests interleaved round-robin across them. */
import { type Exchange, HttpConnection, percentile } from "./http_client.ts";
import type { Dist, Key } from "./results.ts";
import { expectOk, log, perSystem, type System } from "./systems.ts";

/**
 * `n` rounds; each round sends one request to every system, in an order that rotates per round, on one
 * keep-alive connection per system. Returns what `pick` reads from each exchange, per system.
 */
export async function interleaved(
  systems: System[],
  body: (s: System) => Uint8Array,
  n: number,
  pick: (ex: Exchange) => number,
  what: string,
): Promise<Record<Key, number[]>> {
  const conns = systems.map((s) => new HttpConnection(s.port));
  const reqs = systems.map(body);
  const out = perSystem((): number[] => []);
  try {
    for (let round = 0; round < n; round++) {
      for (let j = 0; j < systems.length; j++) {
        const i = (round + j) % systems.length;
        const ex = expectOk(await conns[i].request(reqs[i], true), `${what} on ${systems[i].key}`);
        out[systems[i].key].push(pick(ex));
      }
    }
    for (let i = 0; i < systems.length; i++) {
      if (conns[i].opened === 1) continue;
      log(
        `  ${what} on ${systems[i].key}: ${
          conns[i].opened
        } TCP connections for ${n} requests (server closed keep-alive)`,
      );
    }
  } finally {
    conns.forEach((c) => c.close());
  }
  return out;
}

export function dist(samples: number[]): Dist<number> {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    n: sorted.length,
  };
}
