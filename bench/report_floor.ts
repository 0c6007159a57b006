/**
 * The report's "floor for a proxy on Deno" section (bench/floor.ts): one stream at a time through two bare
 * relays on Deno and through the three systems. A run without the phase has no section.
 */
import { FLOOR_KEYS, type FloorKey, type FloorResults } from "./floor.ts";
import { f, mib, num, ratio, type Row, signed } from "./report_format.ts";
import { footprintCell } from "./report_phases.ts";
import type { BenchResults } from "./results.ts";

const LABEL: Record<FloorKey, string> = {
  direct: "(a) llama-server direct",
  bareDeno: "bare `Deno.serve` relay → (a)'s engine",
  bareHono: "bare Hono relay (`bodyLimit`, a middleware, one more stream) → (a)'s engine",
  switchyard: "(b) Switchyard",
  router: "(c) llama.cpp router",
};

/** The section's lines (none without the phase); `table` lays out a Markdown table as the report does. */
export function floorSection(r: BenchResults, table: (header: Row, rows: Row[]) => string): string[] {
  const F: FloorResults | undefined = r.floor;
  if (!F) return [];
  const direct = num(F.keptMs.direct.p50);
  const rows: Row[] = FLOOR_KEYS.map((k) => {
    const s = F.keptMs[k];
    return [
      LABEL[k],
      `${f(s.p50, 3)} / ${f(s.p90, 3)}`,
      k === "direct" ? "0" : signed(num(s.p50) - direct, 3),
    ];
  });
  return [
    "",
    "### The floor for a proxy on Deno",
    "",
    table(
      ["one stream, kept-alive connection → first event", "p50 / p90 (ms)", "added p50 vs (a) (ms)"],
      rows,
    ),
    "",
    `A streamed \`/v1/completions\` of ${F.maxTokens} tokens, ${F.keptMs.direct.n} per row, round-robin across ` +
    "the five on one kept-alive connection each. The two bare relays (bench/bare_relay.ts) run in their own " +
    "Deno processes with the gateway's V8 flags and forward to (a)'s engine with the gateway's upstream " +
    "client; (b) and (c) have engines of their own, compared with (a)'s as in the table above. What the bare " +
    "`Deno.serve` relay adds, no proxy on this runtime takes out on this machine.",
    ...loadLines(F, table),
  ];
}

/** The throughput row's load through the same five: req/s, the front's CPU per request and its footprint. */
function loadLines(F: FloorResults, table: (header: Row, rows: Row[]) => string): string[] {
  const L = F.load;
  if (!L) return [];
  const rows: Row[] = FLOOR_KEYS.map((k) => {
    const x = L.front[k];
    return [
      LABEL[k],
      f(x.rps, 0),
      ratio(x.rps, L.front.router.rps),
      f(x.frontCpuUs, 0),
      footprintCell(x.idle),
      footprintCell(x.peak),
    ];
  });
  const sixfold = 6 * num(L.front.router.rps);
  return [
    "",
    table(
      [
        `\`/tokenize\` at ${L.connections} connections`,
        "req/s",
        "vs (c)",
        "front CPU µs / request",
        "front idle: RSS / PSS / private (MiB)",
        "front peak under load (MiB)",
      ],
      rows,
    ),
    "",
    `${L.rounds} rounds of ${L.roundMs} ms per row after one to warm up, in turns; req/s is their mean, CPU ` +
    "the median over them of the front process alone (the engine for (a), the relay, the gateway, the router); " +
    "footprints from `/proc/PID/smaps_rollup`, idle before this load, the peak sampled during the row's own " +
    `rounds. Six times the router's req/s is ${f(sixfold, 0)}: the bare \`Deno.serve\` relay made ` +
    `${ratio(L.front.bareDeno.rps, L.front.router.rps)} the router with ${
      f(L.front.bareDeno.frontCpuUs, 0)
    } µs ` +
    `of CPU per request, and its RSS peaked at ${f(mib(L.front.bareDeno.peak.rssKiB), 1)} MiB, against the ` +
    "gateway's 80 MiB target.",
  ];
}
