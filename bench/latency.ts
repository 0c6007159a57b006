/** Latency samples: one keep-alive connection per system, requests interleaved round-robin across them. */
import { type Exchange, HttpConnection, percentile } from "./http_client.ts";
import type { Dist, Spread } from "./results.ts";
import { expectOk, log, type System } from "./systems.ts";

/**
 * `n` rounds; each round sends one request to every system, in an order that rotates per round, on one
 * keep-alive connection per system. Returns what `pick` reads from each exchange, per system (by its key:
 * the three systems, or any others, such as one gateway with metrics on and one with them off).
 */
export async function interleaved<S extends { key: string; port: number } = System>(
  systems: S[],
  body: (s: S) => Uint8Array,
  n: number,
  pick: (ex: Exchange) => number,
  what: string,
): Promise<Record<S["key"], number[]>> {
  const conns = systems.map((s) => new HttpConnection(s.port));
  const reqs = systems.map(body);
  const out = Object.fromEntries(systems.map((s) => [s.key, [] as number[]])) as Record<S["key"], number[]>;
  try {
    for (let round = 0; round < n; round++) {
      for (let j = 0; j < systems.length; j++) {
        const i = (round + j) % systems.length;
        const ex = expectOk(await conns[i].request(reqs[i], true), `${what} on ${systems[i].key}`);
        out[systems[i].key as S["key"]].push(pick(ex));
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

export function spread(samples: number[]): Spread<number> {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), n: sorted.length };
}
