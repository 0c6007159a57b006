/**
 * The report's "metrics on vs off" section (bench/metrics_cost.ts): (b) as it runs by default, against a
 * second Switchyard with `--no-metrics`, measured in the same run. A run without the phase has no section.
 */
import type { Change, MetricsCost } from "./metrics_cost.ts";
import { f, num, type Row, signed } from "./report_format.ts";
import type { BenchResults, Dist } from "./results.ts";

/** The section's lines (none without the phase); `table` lays out a Markdown table as the report does. */
export function metricsCostSection(r: BenchResults, table: (header: Row, rows: Row[]) => string): string[] {
  const c: MetricsCost | undefined = r.metricsCost;
  if (!c) return [];
  const L = c.latencyMs;
  const cell = (d: Dist) => `${f(d.p50, 3)} / ${f(d.p99, 3)}`;
  const diff = (on: Dist, off: Dist, p50?: Change) =>
    `${signed(num(on.p50) - num(off.p50), 3)} / ${signed(num(on.p99) - num(off.p99), 3)}` +
    (p50 ? `; p50 by blocks ${withNoise(num(p50.mean), num(p50.twoSe), 3)}` : "");
  const relative = (on: number, off: number) => `${signed(((on - off) / off) * 100, 1)}%`;
  const T = c.throughput;
  // over the pairs of rounds: the mean change ± 2 standard errors, and whether that interval holds 0
  const withNoise = (mean: number, twoSe: number, digits: number, unit = "") =>
    `${signed(mean, digits)}${unit} ± ${f(twoSe, digits)} (${
      Math.abs(mean) <= twoSe ? "within noise" : "measurable"
    })`;
  const paired = (change?: Change) =>
    change ? withNoise(num(change.mean) * 100, num(change.twoSe) * 100, 1, "%") : undefined;
  const B = c.latencyP50Change;
  const rows: Row[] = [
    [
      "`/tokenize` latency p50 / p99 (ms)",
      cell(L.tokenize.on),
      cell(L.tokenize.off),
      diff(L.tokenize.on, L.tokenize.off, B?.tokenize),
    ],
    [
      "completion n_predict 4, p50 / p99 (ms)",
      cell(L.completion.on),
      cell(L.completion.off),
      diff(L.completion.on, L.completion.off, B?.completion),
    ],
    [
      "time to first streamed chunk, p50 / p99 (ms)",
      cell(L.ttfc.on),
      cell(L.ttfc.off),
      diff(L.ttfc.on, L.ttfc.off, B?.ttfc),
    ],
    [
      `\`/tokenize\` req/s, ${T.connections} connections`,
      f(T.rps.on, 0),
      f(T.rps.off, 0),
      paired(T.rpsChange) ?? relative(num(T.rps.on), num(T.rps.off)),
    ],
    [
      `gateway CPU µs per request, ${T.connections} connections`,
      f(T.gatewayCpuUsPerRequest.on, 0),
      f(T.gatewayCpuUsPerRequest.off, 0),
      paired(T.cpuChange) ?? relative(num(T.gatewayCpuUsPerRequest.on), num(T.gatewayCpuUsPerRequest.off)),
    ],
  ];
  return [
    "",
    "### Metrics on vs off",
    "",
    table(["metric", "metrics on (default)", "--no-metrics", "on − off"], rows),
    "",
    "Two fresh Switchyards, identical but for `--no-metrics`, started for this phase on the same model folder, " +
    "each with its own engine; latency samples " +
    "were interleaved round-robin across the two on one keep-alive connection each, and the load rounds " +
    `ran in ${T.rounds} pairs of ${r.samples.roundMs} ms rounds, one of each back to back, in turns first, ` +
    (r.samples.steadyWarmupMs
      ? `after ${r.samples.steadyWarmupMs} ms of the load for each to warm up; `
      : "; ") +
    "the change is the mean over the pairs of on − off relative to off, ± two standard errors of that mean; " +
    "a latency's p50 by blocks is the p50 difference in each tenth of the samples, in time order, averaged, ± two " +
    "standard errors (each Switchyard has its own engine, so this also holds what sets two engines apart).",
  ];
}
