/**
 * The report's "metrics on vs off" section (bench/metrics_cost.ts): (b) as it runs by default, against a
 * second Switchyard with `--no-metrics`, measured in the same run. A run without the phase has no section.
 */
import type { MetricsCost } from "./metrics_cost.ts";
import { f, num, type Row, signed } from "./report_format.ts";
import type { BenchResults, Dist } from "./results.ts";

/** The section's lines (none without the phase); `table` lays out a Markdown table as the report does. */
export function metricsCostSection(r: BenchResults, table: (header: Row, rows: Row[]) => string): string[] {
  const c: MetricsCost | undefined = r.metricsCost;
  if (!c) return [];
  const L = c.latencyMs;
  const cell = (d: Dist) => `${f(d.p50, 3)} / ${f(d.p99, 3)}`;
  const diff = (on: Dist, off: Dist) =>
    `${signed(num(on.p50) - num(off.p50), 3)} / ${signed(num(on.p99) - num(off.p99), 3)}`;
  const relative = (on: number, off: number) => `${signed(((on - off) / off) * 100, 1)}%`;
  const T = c.throughput;
  const rows: Row[] = [
    [
      "`/tokenize` latency p50 / p99 (ms)",
      cell(L.tokenize.on),
      cell(L.tokenize.off),
      diff(L.tokenize.on, L.tokenize.off),
    ],
    [
      "completion n_predict 4, p50 / p99 (ms)",
      cell(L.completion.on),
      cell(L.completion.off),
      diff(L.completion.on, L.completion.off),
    ],
    [
      "time to first streamed chunk, p50 / p99 (ms)",
      cell(L.ttfc.on),
      cell(L.ttfc.off),
      diff(L.ttfc.on, L.ttfc.off),
    ],
    [
      `\`/tokenize\` req/s, ${T.connections} connections`,
      f(T.rps.on, 0),
      f(T.rps.off, 0),
      relative(num(T.rps.on), num(T.rps.off)),
    ],
    [
      `gateway CPU µs per request, ${T.connections} connections`,
      f(T.gatewayCpuUsPerRequest.on, 0),
      f(T.gatewayCpuUsPerRequest.off, 0),
      relative(num(T.gatewayCpuUsPerRequest.on), num(T.gatewayCpuUsPerRequest.off)),
    ],
  ];
  return [
    "",
    "### Metrics on vs off",
    "",
    table(["metric", "(b) metrics on (default)", "(b') --no-metrics", "on − off"], rows),
    "",
    "Both Switchyards ran on the same model folder in the same run, each with its own engine; latency samples " +
    "were interleaved round-robin across the two on one keep-alive connection each, and the load rounds " +
    `alternated (${T.rounds} × ${r.samples.roundMs} ms each).`,
  ];
}
