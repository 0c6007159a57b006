/**
 * Streaming: a streamed `/v1/completions` bounded by `max_tokens`. One stream at a time, the time to its
 * first event over a new connection and over a kept-alive one; then 8 and 64 streams at once, their first
 * events, the events relayed per second and the CPU each process spent per event. Samples and rounds go
 * round-robin across the three systems.
 */
import { encodeRequest, type Exchange, HttpConnection } from "./http_client.ts";
import { spread } from "./latency.ts";
import { CpuMeter } from "./procs.ts";
import type { ConcurrentStreams, Key, StreamingResults } from "./results.ts";
import { expectOk, log, median, MODEL, perSystem, type System } from "./systems.ts";
import type { Roles } from "./throughput.ts";

const PATH = "/v1/completions";

export const streamBody = (maxTokens: number) => ({
  model: MODEL,
  prompt: "hello",
  max_tokens: maxTokens,
  stream: true,
});

const decoder = new TextDecoder();

/** The SSE events of a streamed body that carry data, the closing `[DONE]` left out. */
export function countEvents(body: Uint8Array): number {
  return decoder.decode(body).match(/^data: (?!\[DONE\])/gm)?.length ?? 0;
}

export function streamed(ex: Exchange, what: string): Exchange {
  expectOk(ex, what);
  if (!ex.body || countEvents(ex.body) === 0) throw new Error(`${what}: a stream without events`);
  return ex;
}

/** One stream on a new connection: from before connecting to its first event. */
async function freshTtfc(sys: System, req: Uint8Array): Promise<number> {
  const conn = new HttpConnection(sys.port);
  const t0 = performance.now();
  try {
    const ex = streamed(await conn.request(req, true), `fresh stream on ${sys.key}`);
    return performance.now() - t0 - (ex.totalMs - ex.firstBodyMs);
  } finally {
    conn.close();
  }
}

type Single = Pick<StreamingResults<number>, "freshMs" | "keptMs" | "keptConnections">;

/** `n` rounds of one fresh and one kept-alive stream per system, which goes first alternating per round. */
async function singleStreams(systems: System[], n: number, maxTokens: number): Promise<Single> {
  const kept = systems.map((s) => new HttpConnection(s.port));
  const reqs = systems.map((s) => encodeRequest("POST", s.port, PATH, streamBody(maxTokens)));
  const fresh = perSystem((): number[] => []);
  const keptMs = perSystem((): number[] => []);
  try {
    for (let round = 0; round < n; round++) {
      for (let j = 0; j < systems.length; j++) {
        const i = (round + j) % systems.length;
        const key = systems[i].key;
        const onKept = async () => {
          const ex = streamed(await kept[i].request(reqs[i], true), `kept-alive stream on ${key}`);
          keptMs[key].push(ex.firstBodyMs);
        };
        if (round % 2) await onKept();
        fresh[key].push(await freshTtfc(systems[i], reqs[i]));
        if (round % 2 === 0) await onKept();
      }
    }
    return {
      freshMs: perSystem((k) => spread(fresh[k])),
      keptMs: perSystem((k) => spread(keptMs[k])),
      keptConnections: perSystem((k) => kept[systems.findIndex((s) => s.key === k)].opened),
    };
  } finally {
    kept.forEach((c) => c.close());
  }
}

/** `streams` at once, one keep-alive connection each, `rounds` times per system after one unmeasured round. */
async function concurrent(
  systems: System[],
  roles: Record<Key, Roles>,
  streams: number,
  rounds: number,
  maxTokens: number,
): Promise<ConcurrentStreams<number>> {
  const conns = perSystem((k) => {
    const port = systems.find((s) => s.key === k)!.port;
    return Array.from({ length: streams }, () => new HttpConnection(port));
  });
  const reqs = perSystem((k) => {
    const port = systems.find((s) => s.key === k)!.port;
    return encodeRequest("POST", port, PATH, streamBody(maxTokens));
  });
  const ttfc = perSystem((): number[] => []);
  const events = perSystem(() => 0);
  const wallMs = perSystem(() => 0);
  const cpuMs = perSystem((): Record<string, number> => ({}));
  const once = async (key: Key) => {
    const who: Roles = { ...roles[key], client: Deno.pid };
    const meter = new CpuMeter(Object.values(who));
    meter.start();
    const t0 = performance.now();
    const all = await Promise.all(
      conns[key].map(async (c) => streamed(await c.request(reqs[key], true), `${streams} streams on ${key}`)),
    );
    const ms = performance.now() - t0;
    meter.end();
    return {
      all,
      ms,
      cpu: Object.fromEntries(Object.entries(who).map(([role, pid]) => [role, meter.ms(pid)])),
    };
  };
  try {
    for (const s of systems) await once(s.key);
    for (let r = 0; r < rounds; r++) {
      for (let j = 0; j < systems.length; j++) {
        const key = systems[(r + j) % systems.length].key;
        const { all, ms, cpu } = await once(key);
        ttfc[key].push(...all.map((ex) => ex.firstBodyMs));
        events[key] += all.reduce((n, ex) => n + countEvents(ex.body!), 0);
        wallMs[key] += ms;
        for (const [role, used] of Object.entries(cpu)) cpuMs[key][role] = (cpuMs[key][role] ?? 0) + used;
      }
    }
  } finally {
    for (const k of Object.keys(conns) as Key[]) conns[k].forEach((c) => c.close());
  }
  return {
    streams,
    rounds,
    ttfcP50Ms: perSystem((k) => median(ttfc[k])),
    chunksPerS: perSystem((k) => events[k] / (wallMs[k] / 1000)),
    cpuUsPerChunk: perSystem((k) =>
      Object.fromEntries(Object.entries(cpuMs[k]).map(([role, ms]) => [role, (ms * 1000) / events[k]]))
    ),
  };
}

export interface StreamingSetup {
  streams: number;
  streamTokens: number;
  concurrentStreams: number[];
  streamRounds: number;
}

export async function measureStreaming(
  systems: System[],
  roles: Record<Key, Roles>,
  setup: StreamingSetup,
): Promise<StreamingResults<number>> {
  log(
    `streaming: ${setup.streams} single streams per system and connection kind, ${setup.streamTokens} tokens each`,
  );
  const single = await singleStreams(systems, setup.streams, setup.streamTokens);
  const fmt = (x: number) => x.toFixed(3);
  for (const s of systems) {
    const [f, k] = [single.freshMs[s.key], single.keptMs[s.key]];
    log(`  ${s.key}: first event p50 fresh ${fmt(f.p50)} ms, kept-alive ${fmt(k.p50)} ms`);
  }
  const many: ConcurrentStreams<number>[] = [];
  for (const n of setup.concurrentStreams) {
    const rounds = setup.streamRounds;
    log(`streaming: ${n} streams at once, ${rounds} round${rounds === 1 ? "" : "s"} per system`);
    const c = await concurrent(systems, roles, n, setup.streamRounds, setup.streamTokens);
    for (const s of systems) {
      log(
        `  ${s.key}: first event median ${c.ttfcP50Ms[s.key].toFixed(2)} ms, ` +
          `${c.chunksPerS[s.key].toFixed(0)} events/s`,
      );
    }
    many.push(c);
  }
  return { maxTokens: setup.streamTokens, ...single, concurrent: many };
}
