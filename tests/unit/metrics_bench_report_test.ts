/** The bench report's "metrics on vs off" section: rendered from the stored results, absent without the phase. */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import type { MetricsCost } from "../../bench/metrics_cost.ts";
import { renderReport } from "../../bench/report.ts";
import { type BenchResults, toStored } from "../../bench/results.ts";

const latest = (): BenchResults =>
  JSON.parse(Deno.readTextFileSync(new URL("../../bench/results/latest.json", import.meta.url)));

const dist = (p50: number, p99: number) => ({ p50, p99, mean: p50, n: 100 });
const COST: MetricsCost<number> = {
  latencyMs: {
    tokenize: { on: dist(0.52, 0.9), off: dist(0.5, 0.95) },
    completion: { on: dist(2.1, 4), off: dist(2.05, 4.2) },
    ttfc: { on: dist(4.2, 7), off: dist(4.1, 7.5) },
  },
  throughput: {
    connections: 16,
    rounds: 3,
    rps: { on: 5000, off: 5100 },
    gatewayCpuUsPerRequest: { on: 204, off: 200 },
  },
};

Deno.test("metrics on vs off: a section of its own, with the differences; none without the phase", () => {
  const without = latest();
  assert(!renderReport({ ...without, metricsCost: undefined }).includes("Metrics on vs off"));
  const report = renderReport(toStored({ ...without, metricsCost: COST } as BenchResults<number>));
  assertMatch(report, /### Metrics on vs off/);
  assertMatch(
    report,
    /\| `\/tokenize` latency p50 \/ p99 \(ms\) +\| +0\.520 \/ 0\.900 \| +0\.500 \/ 0\.950 \| +\+0\.020 \/ -0\.050 \|/,
  );
  assertMatch(report, /\| `\/tokenize` req\/s, 16 connections +\| +5000 \| +5100 \| +-2\.0% \|/);
  assertMatch(report, /\| gateway CPU µs per request, 16 connections +\| +204 \| +200 \| +\+2\.0% \|/);
  assertEquals(report.endsWith("\n"), true);
});

Deno.test("metrics on vs off: paired rounds and blocked p50s show their noise and say whether the change is in it", () => {
  const cost: MetricsCost<number> = {
    ...COST,
    latencyP50Change: {
      tokenize: { mean: 0.02, twoSe: 0.03 },
      completion: { mean: 0.2, twoSe: 0.05 },
      ttfc: { mean: -0.01, twoSe: 0.04 },
    },
    throughput: {
      ...COST.throughput,
      rpsChange: { mean: -0.015, twoSe: 0.038 },
      cpuChange: { mean: 0.09, twoSe: 0.02 },
    },
  };
  const report = renderReport(toStored({ ...latest(), metricsCost: cost } as BenchResults<number>));
  assertMatch(report, /\+0\.020 \/ -0\.050; p50 by blocks \+0\.020 ± 0\.030 \(within noise\)/);
  assertMatch(report, /p50 by blocks \+0\.200 ± 0\.050 \(measurable\)/);
  assertMatch(
    report,
    /\| `\/tokenize` req\/s, 16 connections +\| +5000 \| +5100 \| +-1\.5% ± 3\.8 \(within noise\) \|/,
  );
  assertMatch(report, /\+9\.0% ± 2\.0 \(measurable\)/);
});
