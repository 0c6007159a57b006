/** The pure parts of the bench's streaming, swap and memory phases, and the rows the report makes of them. */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { spread } from "../../bench/latency.ts";
import { peakOf } from "../../bench/memory.ts";
import { parseSmapsRollup } from "../../bench/procs.ts";
import { renderReport } from "../../bench/report.ts";
import type { BenchResults, ProcessMemory, Spread } from "../../bench/results.ts";
import { countEvents } from "../../bench/streaming.ts";
import { engineTimeMs, gatewayTimeMs, stopTiming } from "../../bench/swap_log.ts";

// epoch milliseconds as doubles are exact to about 0.0002 ms
const near = (actual: number | null, expected: number, what: string) =>
  assert(actual !== null && Math.abs(actual - expected) < 1e-3, `${what}: ${actual} is not ${expected}`);

const DAY = Date.UTC(2026, 0, 2);
const at = (h: number, m: number, s: number, ms: number) => DAY + ((h * 60 + m) * 60 + s) * 1000 + ms;

Deno.test("gateway stamps: the day nearest to the reference, the middle of the stamped millisecond", () => {
  near(
    gatewayTimeMs("23:31:20.290 swap-large stopped (code 0): evicted", at(23, 31, 20, 0)),
    at(23, 31, 20, 290.5),
    "same day",
  );
  // just after midnight, a line stamped before it belongs to the day before
  near(gatewayTimeMs("23:59:59.999 x", DAY + 86_400_000 + 5), at(23, 59, 59, 999.5), "day before");
  near(gatewayTimeMs("00:00:00.001 x", at(23, 59, 59, 999)), DAY + 86_400_000 + 1.5, "day after");
  assertEquals(gatewayTimeMs("[swap-large] 0.00.131.781 I srv cleaning up", DAY), null);
});

Deno.test("engine lines: llama.cpp's minutes.seconds.ms.µs since start, for the named model only", () => {
  near(engineTimeMs("[m] 1.02.131.781 I srv    operator(): exit command received", "m"), 62_131.781, "bare");
  near(
    engineTimeMs("23:31:20.240 [m] 0.00.004.633 I cmn  common_param", "m"),
    4.633,
    "with the gateway's stamp",
  );
  assertEquals(engineTimeMs("[other] 0.00.004.633 I cmn", "m"), null);
  assertEquals(engineTimeMs("[m] You are a helpful assistant<|im_end|>", "m"), null);
});

/** A stop as the gateway logs it: the engine's answer, the eviction, its exit, another model's lines between. */
const STOP_LOG = [
  "23:31:20.183 [swap-large] 0.00.057.285 I srv  update_slots: all slots are idle",
  "[swap-large] 0.00.081.487 I slot      release: id  3 | task 0 | stop processing: n_tokens = 2, truncated = 0",
  "[swap-large] 0.00.081.500 I srv  update_slots: all slots are idle",
  "23:31:20.275 evicting swap-large (least recently used) to make room for swap-small",
  "23:31:20.276 loading swap-small",
  "23:31:20.280 [swap-small] 0.00.001.898 I cmn  common_param: build 1",
  "23:31:20.288 [swap-large] 0.00.131.663 I srv    operator(): exit command received, exiting...",
  "[swap-large] 0.00.131.781 I srv    operator(): operator(): cleaning up before exit...",
  "23:31:20.290 swap-large stopped (code 0): evicted",
  "23:31:21.000 [swap-large] 0.00.000.100 I a later engine of the same model",
];

Deno.test("a stop's timing: engine times tied to the gateway's clock by the engine's answer", () => {
  // the bench got the answer at .229: the engine's 81.487 ms is then, its exit command 50.176 ms later
  const timing = stopTiming(STOP_LOG, "swap-large", at(23, 31, 20, 229));
  assert(timing);
  near(timing.evictToStoppedMs, 15, "evicting → stopped");
  near(timing.engineExitMs, 0.118, "exit command → last line");
  near(timing.reportedMs, 290.5 - (229 + 50.294), "last line → stopped");
  near(timing.exitCommandToStoppedMs, 290.5 - (229 + 50.176), "exit command → stopped");
});

Deno.test("a stop's timing is null without the lines it needs, and leaves out an unlogged eviction", () => {
  const without = (pattern: RegExp) => STOP_LOG.filter((l) => !pattern.test(l));
  const t0 = at(23, 31, 20, 229);
  assertEquals(stopTiming(without(/exit command/), "swap-large", t0), null);
  assertEquals(stopTiming(without(/stop processing/), "swap-large", t0), null);
  assertEquals(stopTiming(without(/stopped \(/), "swap-large", t0), null);
  assertEquals(stopTiming(STOP_LOG, "swap-small", t0), null);
  assertEquals(stopTiming(without(/evicting/), "swap-large", t0)?.evictToStoppedMs, null);
});

Deno.test("stream events: data events counted, the closing [DONE] not", () => {
  const body = new TextEncoder().encode(
    'data: {"choices":[{"text":" the"}]}\n\ndata: {"choices":[{"text":" of"}]}\n\n' +
      'data: {"choices":[],"timings":{}}\n\ndata: [DONE]\n\n',
  );
  assertEquals(countEvents(body), 3);
  assertEquals(countEvents(new Uint8Array()), 0);
});

Deno.test("smaps_rollup: RSS, PSS and private (clean + dirty) in KiB", () => {
  const text = "561b8e68c000-7ffd7e9cd000 ---p 00000000 00:00 0   [rollup]\nRss:                1692 kB\n" +
    "Pss:                 417 kB\nPss_Dirty:           116 kB\nShared_Clean:       1520 kB\n" +
    "Private_Clean:        56 kB\nPrivate_Dirty:       116 kB\n";
  assertEquals(parseSmapsRollup(text), { rssKiB: 1692, pssKiB: 417, privateKiB: 172 });
  assert(Number.isNaN(parseSmapsRollup("").rssKiB));
});

Deno.test("memory peaks: each figure's own maximum; a gone process's NaN gives way", () => {
  const gone = { rssKiB: NaN, pssKiB: NaN, privateKiB: NaN };
  assertEquals(peakOf({ rssKiB: 10, pssKiB: 8, privateKiB: 2 }, { rssKiB: 9, pssKiB: 9, privateKiB: 3 }), {
    rssKiB: 10,
    pssKiB: 9,
    privateKiB: 3,
  });
  assertEquals(peakOf(gone, { rssKiB: 1, pssKiB: 2, privateKiB: 3 }), {
    rssKiB: 1,
    pssKiB: 2,
    privateKiB: 3,
  });
});

Deno.test("spread: nearest-rank p50 and p90", () => {
  assertEquals(spread([5, 1, 4, 2, 3, 10, 9, 8, 7, 6]), { p50: 5, p90: 9, n: 10 });
  assertEquals(spread([]).n, 0);
});

const latestJson = (): BenchResults =>
  JSON.parse(Deno.readTextFileSync(new URL("../../bench/results/latest.json", import.meta.url)));

Deno.test("the report judges the new phases' targets from their figures", () => {
  const s = (p50: number, p90 = p50): Spread => ({ p50, p90, n: 10 });
  const each = <T>(d: T, b: T, c: T) => ({ direct: d, switchyard: b, router: c });
  const cpu = (d: Record<string, number>, b: Record<string, number>, c: Record<string, number>) =>
    each(d, b, c);
  const mem = (
    system: ProcessMemory["system"],
    role: string,
    idleMiB: number,
    loadMiB: number,
  ): ProcessMemory => {
    const kib = (m: number) => ({ rssKiB: m * 1024, pssKiB: m * 512, privateKiB: m * 256 });
    return { system, role, idle: kib(idleMiB), load: kib(loadMiB) };
  };
  const r: BenchResults = {
    ...latestJson(),
    streaming: {
      maxTokens: 64,
      freshMs: each(s(1), s(1.2), s(1.4)),
      keptMs: each(s(1), s(1.5), s(1.1)),
      keptConnections: each(10, 1, 10),
      concurrent: [{
        streams: 8,
        rounds: 2,
        ttfcP50Ms: each(3, 12, 10),
        chunksPerS: each(8000, 6000, 5000),
        cpuUsPerChunk: cpu({ engine: 90 }, { gateway: 40, runner: 20, engine: 95 }, {
          router: 50,
          engine: 90,
        }),
      }],
    },
    swap: {
      models: [{ name: "small", mib: 100 }, { name: "large", mib: 300 }],
      answerMs: each(s(50, 60), s(70, 90), s(60, 80)),
      switchyardStop: {
        stops: 11,
        evictToStoppedMs: s(12, 20),
        engineExitMs: s(1, 3),
        reportedMs: s(4, 9),
        exitCommandToStoppedMs: s(5, 12),
      },
    },
    memory: {
      connections: 16,
      loadMs: 3000,
      everyMs: 100,
      processes: [
        mem("direct", "engine", 20, 30),
        mem("switchyard", "gateway", 50, 90),
        mem("switchyard", "runner", 40, 44),
        mem("switchyard", "spare runner", 35, 36),
        mem("switchyard", "engine", 20, 30),
        mem("router", "router", 10, 15),
        mem("router", "engine", 20, 30),
      ],
    },
  };
  const md = renderReport(r);
  const row = (start: string) => md.split("\n").find((l) => l.startsWith(`| ${start}`)) ?? `no row ${start}`;
  assertMatch(row("one stream, new connection"), /\| +1\.200 \/ 1\.200 \|/);
  assertMatch(
    md,
    /\| ↳ added vs direct, p50 \/ p90 \(ms\) +\| +0 \| +\+0\.200 \/ \+0\.200 \|.*✅ met: added p50 ≤ 0\.3 ms/,
  );
  assertMatch(
    md,
    /\| ↳ added vs direct, p50 \/ p90 \(ms\) +\| +0 \| +\+0\.500 \/ \+0\.500 \|.*❌ missed: added p50/,
  );
  assertMatch(row("8 streams at once: first event"), /❌ missed: ≤ router/);
  assertMatch(row("8 streams at once: events relayed"), /✅ met: ≥ router/);
  assertMatch(row("8 streams: CPU µs per event"), /\| +40\.0 \/ 20\.0 \/ 95\.0 \| +50\.0 \/ — \/ 90\.0 \|/);
  // a phase run with other stream counts shows those, not the defaults
  assert(!md.includes("| 64 streams at once"));
  assertMatch(row("swap at"), /\| +70\.0 \/ 90\.0 \|.*❌ missed: p50 ≤ router/);
  assertMatch(row("↳ stop: the engine's last line"), /\| +4\.0 \/ 9\.0 \|.*✅ met: p90 ≤ 10 ms/);
  assertMatch(
    row("memory, idle: front process"),
    /gateway 50\.0 \/ 25\.0 \/ 12\.5 \|.*✅ met: gateway RSS ≤ 60 MiB/,
  );
  assertMatch(row("memory, under load: front process"), /❌ missed: gateway RSS ≤ 80 MiB/);
  assertMatch(row("memory, under load: runner"), /✅ met: private ≤ 15 MiB, RSS ≤ 45 MiB/);
  assertMatch(row("memory, idle: spare runner"), /35\.0 \/ 17\.5 \/ 8\.8/);
  // gateway + runner + engine, the spare apart: 50 + 40 + 20 MiB RSS
  assertMatch(
    row("memory, idle: one loaded model"),
    /\| +110\.0 \/ 55\.0 \/ 27\.5 \| +30\.0 \/ 15\.0 \/ 7\.5 \|/,
  );
  assertMatch(md, /Swap rows: small \(100 MiB\) and large \(300 MiB\)/);
  assertMatch(md, /Stops timed: 10 of 11 /);
  assertMatch(md, /Stops timed: 10 of 11 /);
});

Deno.test("the floor section: each relay's and system's first event, and what it adds to (a)'s", () => {
  const s = (p50: number, p90 = p50): Spread => ({ p50, p90, n: 150 });
  const withFloor: BenchResults = {
    ...latestJson(),
    floor: {
      maxTokens: 64,
      keptMs: {
        direct: s(1, 2),
        bareDeno: s(1.9, 2.5),
        bareHono: s(2.1),
        switchyard: s(3.25),
        router: s(1.5),
      },
    },
  };
  const md = renderReport(withFloor);
  const row = (start: string) => md.split("\n").find((l) => l.startsWith(`| ${start}`)) ?? `no row ${start}`;
  assertMatch(row("(a) llama-server direct "), /\| +1\.000 \/ 2\.000 \| +0 \|$/);
  assertMatch(row("bare `Deno.serve` relay"), /\| +1\.900 \/ 2\.500 \| +\+0\.900 \|$/);
  assertMatch(row("bare Hono relay"), /\| +\+1\.100 \|$/);
  assertMatch(row("(b) Switchyard "), /\| +\+2\.250 \|$/);
  assertMatch(row("(c) llama.cpp router "), /\| +\+0\.500 \|$/);
  assertMatch(md, /A streamed `\/v1\/completions` of 64 tokens, 150 per row/);
  // runs from before the load rows have no load table
  assert(!md.includes("front CPU µs / request"));
  // a run without the phase has no section
  assert(!renderReport({ ...withFloor, floor: undefined }).includes("The floor for a proxy on Deno"));
});

Deno.test("the floor section's load table: req/s against the router, the front's CPU, its footprints", () => {
  const s = (p50: number): Spread => ({ p50, p90: p50, n: 150 });
  const kib = (mib: number) => ({ rssKiB: mib * 1024, pssKiB: mib * 512, privateKiB: mib * 256 });
  const front = (rps: number, cpu: number, idleMiB: number, peakMiB: number) => ({
    rps,
    rpsRounds: [rps],
    frontCpuUs: cpu,
    idle: kib(idleMiB),
    peak: kib(peakMiB),
  });
  const md = renderReport({
    ...latestJson(),
    floor: {
      maxTokens: 64,
      keptMs: { direct: s(1), bareDeno: s(2), bareHono: s(2), switchyard: s(3), router: s(1.5) },
      load: {
        connections: 16,
        rounds: 3,
        roundMs: 1000,
        front: {
          direct: front(40000, 25, 20, 70),
          bareDeno: front(15000, 55, 36, 86),
          bareHono: front(12000, 70, 40, 88),
          switchyard: front(9000, 100, 78, 140),
          router: front(3000, 500, 13, 20),
        },
      },
    },
  });
  const row = (start: string) =>
    md.split("\n").find((l) => l.startsWith(`| ${start}`) && l.includes("/ ")) ?? "";
  assertMatch(md, /\| `\/tokenize` at 16 connections +\| +req\/s \| +vs \(c\) \|/);
  const lines = md.split("\n").filter((l) => l.startsWith("| bare `Deno.serve` relay"));
  assertEquals(lines.length, 2);
  assertMatch(
    lines[1],
    /\| +15000 \| +5\.00× \| +55 \| +36\.0 \/ 18\.0 \/ 9\.0 \| +86\.0 \/ 43\.0 \/ 21\.5 \|$/,
  );
  assert(row("(b) Switchyard") !== "");
  assertMatch(
    md,
    /Six times the router's req\/s is 18000: the bare `Deno\.serve` relay made 5\.00× the router with 55 µs/,
  );
  assertMatch(md, /its RSS peaked at 86\.0 MiB/);
});

Deno.test("the warm-up note: the first seconds of load beside the measured rows", () => {
  const stored = latestJson();
  const md = renderReport({
    ...stored,
    steadyWarmup: {
      ms: 5000,
      connections: 16,
      rps: { direct: 50000, switchyard: 9000, router: 3000 },
      frontCpuUs: { direct: 20, switchyard: 110, router: 400 },
    },
  });
  const t16 = stored.throughput.switchyard.find((t) => t.connections === 16)!;
  assertMatch(md, /before the load rows each system took 5000 ms of `\/tokenize` at 16 connections/);
  assertMatch(
    md,
    /Switchyard made 9000 req\/s at 110 µs of gateway CPU per request \(the router 3000 req\/s, 3\.00× it\)/,
  );
  assert(md.includes(`against ${t16.rps!.toFixed(0)} req/s at `));
  assert(!renderReport({ ...stored, steadyWarmup: undefined }).includes("Warm-up under load"));
});
