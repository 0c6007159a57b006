/**
 * The Markdown report of a run, `bench/results/latest.md`: a pure function of the stored results
 * (`latest.json`), so that tests/unit/bench_report_test.ts can check the committed pair agrees.
 */
import { COLD_SETTLE_MS } from "./options.ts";
import { f, mib, num, ratio, type Row, signed, target } from "./report_format.ts";
import { floorSection } from "./report_floor.ts";
import { metricsCostSection } from "./report_metrics.ts";
import {
  footprintNotes,
  footprintRows,
  streamingNotes,
  streamingRows,
  swapNotes,
  swapRows,
} from "./report_phases.ts";
import { type BenchResults, type Key, KEYS, type Throughput } from "./results.ts";

export const LABEL: Record<Key, string> = {
  direct: "(a) llama-server direct",
  switchyard: "(b) Switchyard",
  router: "(c) llama.cpp router",
};

/**
 * deno fmt would re-wrap the notes into one paragraph, so that a changed number reflows every line after it;
 * laid out here instead (one sentence a line, the table aligned as deno fmt aligns it), the file is exactly
 * what `renderReport` returns and a new run's diff shows only the lines whose figures changed.
 */
const FMT_IGNORE = "<!-- deno-fmt-ignore-file -->";

/** The file's whole text, trailing newline included. */
export function renderReport(r: BenchResults): string {
  const m = r.machine;
  return [
    FMT_IGNORE,
    "",
    "## Switchyard bench",
    "",
    markdownTable(
      ["metric", LABEL.direct, LABEL.switchyard, LABEL.router, "b/a", "b/c", "target"],
      [
        ...latencyRows(r),
        ...streamingRows(r),
        coldRow(r),
        ...swapRows(r),
        ...throughputRows(r),
        ...memoryRows(r),
        ...footprintRows(r),
      ],
    ),
    "",
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB RAM, ${m.os}; Deno ${m.deno} (V8 ${m.v8}); ` +
    `llama.cpp build_info ${JSON.stringify(r.buildInfo)}.`,
    `Engine flags for all three: \`${
      r.engine.flags.join(" ")
    }\`; model: tiny llama GGUF from tests/fixtures/gguf.ts.`,
    `Load average before / after: ${m.loadavgBefore} / ${m.loadavgAfter}.`,
    loadGeneratorNote(r),
    "Latency rows: one keep-alive connection per system, requests interleaved round-robin across the three systems; " +
    "the client is bench/http_client.ts (raw TCP), so its own overhead is the same small constant for all.",
    `Cold start: (a) spawn of llama-server → first streamed token of \`/completion\`; (b), (c) POST /models/unload, ` +
    `wait for \`unloaded\`, ${COLD_SETTLE_MS} ms pause, then a streamed \`/completion\` → first token.`,
    "The TIME_WAIT row counts closed gateway→engine connections (a lower bound, as the kernel recycles some): " +
    "llama-server closes a keep-alive connection after 100 requests (≈10 per 1k); llama.cpp's router opens one " +
    "per request, and answers its own clients with `Connection: close`, so they reconnect on every request too.",
    `Note: the engines, the gateway and the load generator all share these ${m.nproc} cores, so req/s at many ` +
    "connections is bounded by the CPU they split, not by any one process alone.",
    ...warmupNotes(r),
    ...streamingNotes(r),
    ...swapNotes(r),
    ...footprintNotes(r),
    ...floorSection(r, markdownTable),
    ...metricsCostSection(r, markdownTable),
    "",
  ].join("\n");
}

function latencyRows(r: BenchResults): Row[] {
  const L = r.latencyMs;
  return ([
    ["`/tokenize` latency p50 / p99 (ms)", L.tokenize, "added p50 < 0.5 ms"],
    ["completion n_predict 4, p50 / p99 (ms)", L.completion, undefined],
    ["time to first streamed chunk, p50 / p99 (ms)", L.ttfc, undefined],
  ] as const).flatMap(([name, m, goal]) => {
    const add = (k: Key) => num(m[k].p50) - num(m.direct.p50);
    const add99 = (k: Key) => num(m[k].p99) - num(m.direct.p99);
    return [
      [
        name,
        ...KEYS.map((k) => `${f(m[k].p50, 3)} / ${f(m[k].p99, 3)}`),
        ratio(m.switchyard.p50, m.direct.p50),
        ratio(m.switchyard.p50, m.router.p50),
        "",
      ],
      [
        "↳ added vs direct, p50 / p99 (ms)",
        "0",
        `${signed(add("switchyard"), 3)} / ${signed(add99("switchyard"), 3)}`,
        `${signed(add("router"), 3)} / ${signed(add99("router"), 3)}`,
        "",
        ratio(add("switchyard"), add("router")),
        goal ? target(add("switchyard") < 0.5, goal) : "",
      ],
    ];
  });
}

function coldRow(r: BenchResults): Row {
  const c = r.coldStartMs;
  return [
    "cold start → first token, median (min–max) ms",
    ...KEYS.map((k) => `${f(c[k].median, 1)} (${f(c[k].min, 0)}–${f(c[k].max, 0)})`),
    ratio(c.switchyard.median, c.direct.median),
    ratio(c.switchyard.median, c.router.median),
    target(num(c.switchyard.median) <= 1.25 * num(c.router.median), "≤ 1.25× router"),
  ];
}

/** The 16-connection run (or the first one) of a system, which the per-request figures are read from. */
function at16(r: BenchResults, k: Key): Throughput | undefined {
  return r.throughput[k].find((t) => t.connections === 16) ?? r.throughput[k][0];
}

function throughputRows(r: BenchResults): Row[] {
  const T = r.throughput;
  const rows: Row[] = T.direct.map((_, i) => {
    const n = T.direct[i].connections;
    const [a, b, c] = KEYS.map((k) => T[k][i]);
    const rps = (t: Throughput) => f(t.rps, 0) + (t.errors ? ` (${t.errors} errors)` : "");
    return [
      `\`/tokenize\` req/s, ${n} connection${n > 1 ? "s" : ""}`,
      rps(a),
      rps(b),
      rps(c),
      ratio(b.rps, a.rps),
      ratio(b.rps, c.rps),
      n === 16 || n === 64 ? target(num(b.rps) >= 6 * num(c.rps), "≥ 6× router") : "",
    ];
  });
  const us = (k: Key, role: string) => f(at16(r, k)?.cpuUsPerRequest[role], 0);
  rows.push([
    "CPU µs per request at 16 conns: front / runner / engine",
    `— / — / ${us("direct", "engine")}`,
    `${us("switchyard", "gateway")} / ${us("switchyard", "runner")} / ${us("switchyard", "engine")}`,
    `${us("router", "router")} / — / ${us("router", "engine")}`,
    "",
    ratio(at16(r, "switchyard")?.cpuUsPerRequest.gateway, at16(r, "router")?.cpuUsPerRequest.router),
    "",
  ]);
  rows.push([
    "gateway→engine sockets put in TIME_WAIT per 1k requests, 16 conns",
    "—",
    f(at16(r, "switchyard")?.upstreamClosesPer1k, 0),
    f(at16(r, "router")?.upstreamClosesPer1k, 0),
    "",
    "",
    "",
  ]);
  return rows;
}

function memoryRows(r: BenchResults): Row[] {
  const M = r.rssKiB;
  const sy = M.switchyard;
  const syModel = mib(sy.runner) + mib(sy.engine);
  const syTotal = mib(sy.gateway) + mib(sy.runner) + mib(sy.engine);
  const rtTotal = mib(M.router.router) + mib(M.router.engine);
  const spares = sy.spareRunners;
  return [
    [
      "RSS of the front process (MiB)",
      "—",
      `gateway ${f(mib(sy.gateway), 1)} (idle ${f(mib(sy.gatewayIdle), 1)})`,
      `router ${f(mib(M.router.router), 1)}`,
      "",
      ratio(mib(sy.gateway), mib(M.router.router)),
      "",
    ],
    [
      "RSS per model: runner + engine (MiB)",
      `— + ${f(mib(M.direct.engine), 1)}`,
      `${f(mib(sy.runner), 1)} + ${f(mib(sy.engine), 1)}`,
      `— + ${f(mib(M.router.engine), 1)}`,
      ratio(syModel, mib(M.direct.engine)),
      ratio(syModel, mib(M.router.engine)),
      "",
    ],
    [
      "RSS total, one model loaded (MiB)",
      f(mib(M.direct.engine), 1),
      `${f(syTotal, 1)} (+ ${spares.length} spare runner${spares.length === 1 ? "" : "s"} ${
        spares.map((k) => f(mib(k), 1)).join(", ")
      })`,
      f(rtTotal, 1),
      ratio(syTotal, mib(M.direct.engine)),
      ratio(syTotal, rtTotal),
      "",
    ],
  ];
}

function loadGeneratorNote(r: BenchResults): string {
  const clientCpu = (k: Key) => f(at16(r, k)?.cpu.client, 0);
  // With keep-alive working, the Deno generator opens exactly one connection per connection slot and round.
  const reuse = r.client.generator === "deno"
    ? `; TCP connections it opened over the 16-connection rounds: ${
      KEYS.map((k) => at16(r, k)?.clientConnections ?? NaN).join(" / ")
    } (16 per round when keep-alive holds)`
    : "";
  return `Load generator: ${
    r.client.generator === "wrk"
      ? `${r.client.wrk} (-t1, Lua POST body)`
      : "the Deno raw-TCP keep-alive generator (bench/http_client.ts)"
  }` +
    (r.client.wrk ? "" : " — wrk is not installed (apt-get install -y wrk)") +
    `; its CPU at 16 connections: ${clientCpu("direct")}% / ${clientCpu("switchyard")}% / ${
      clientCpu("router")
    }% of one core (a / b / c)${reuse}.`;
}

/**
 * The first column left-aligned, the others right-aligned, every cell padded to its column's width as
 * deno fmt pads it: emoji presentation characters take two columns.
 */
export function markdownTable(header: Row, rows: Row[]): string {
  const width = (s: string) => [...s].length + (s.match(/\p{Emoji_Presentation}/gu)?.length ?? 0);
  const widths = header.map((_, i) => Math.max(3, ...[header, ...rows].map((row) => width(row[i]))));
  const pad = (s: string, i: number) => {
    const fill = " ".repeat(widths[i] - width(s));
    return i === 0 ? s + fill : fill + s;
  };
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(header.map(pad)),
    line(widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":"))),
    ...rows.map((row) => line(row.map(pad))),
  ].join("\n");
}

// After a change to the wording here: `deno run --allow-read --allow-write bench/report.ts` re-renders
// results/latest.md from the stored results/latest.json, so its figures stay those measured.
if (import.meta.main) {
  const dir = new URL("./results/", import.meta.url);
  const stored: BenchResults = JSON.parse(await Deno.readTextFile(new URL("latest.json", dir)));
  await Deno.writeTextFile(new URL("latest.md", dir), renderReport(stored));
}

/** What the first seconds of load cost, before the rows that follow them were measured. */
function warmupNotes(r: BenchResults): string[] {
  const w = r.steadyWarmup;
  if (!w) return [];
  const t16 = at16(r, "switchyard");
  return [
    `Warm-up under load: before the load rows each system took ${w.ms} ms of \`/tokenize\` at ` +
    `${w.connections} connections. In it Switchyard made ${f(w.rps.switchyard, 0)} req/s at ` +
    `${f(w.frontCpuUs.switchyard, 0)} µs of gateway CPU per request (the router ${
      f(w.rps.router, 0)
    } req/s, ` +
    `${ratio(w.rps.switchyard, w.rps.router)} it)` +
    (t16 ? `, against ${f(t16.rps, 0)} req/s at ${f(t16.cpuUsPerRequest.gateway, 0)} µs in the rows` : "") +
    ": V8 optimizes the gateway's request path over its first seconds of load.",
  ];
}
