/** The bench's report and command line, without running the bench: the committed results must agree. */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { DEFAULT_ENGINE_FLAGS, parseArgs, PHASES, UsageError } from "../../bench/options.ts";
import { renderProjectionReport } from "../../bench/projection_report.ts";
import { renderReport } from "../../bench/report.ts";
import { type BenchResults, toStored } from "../../bench/results.ts";

const results = new URL("../../bench/results/", import.meta.url);
const latestJson = (): BenchResults => JSON.parse(Deno.readTextFileSync(new URL("latest.json", results)));

Deno.test("bench/results/latest.md is the report rendered from latest.json", () => {
  assertEquals(renderReport(latestJson()), Deno.readTextFileSync(new URL("latest.md", results)));
});

Deno.test("bench/results/projection.md is the projection-error report rendered from projection.json", () => {
  const stored = JSON.parse(Deno.readTextFileSync(new URL("projection.json", results)));
  assertEquals(renderProjectionReport(stored), Deno.readTextFileSync(new URL("projection.md", results)));
});

Deno.test("a run with skipped phases renders the same from its JSON as in memory, with n/a for the gaps", () => {
  const stored = latestJson();
  const each = <T>(x: T) => ({ direct: x, switchyard: x, router: x });
  const nothing = each({ p50: NaN, p99: NaN, mean: NaN, n: 0 });
  const run: BenchResults<number> = {
    ...stored,
    machine: { ...stored.machine, memGiB: 23.5 },
    client: { generator: "deno", wrk: null },
    latencyMs: { tokenize: nothing, completion: nothing, ttfc: nothing },
    coldStartMs: each({ median: NaN, min: Infinity, max: -Infinity, samples: [] }),
    throughput: each([]),
    streaming: undefined,
    steadyWarmup: undefined,
    floor: undefined,
    swap: undefined,
    memory: undefined,
    metricsCost: undefined,
  };
  const inMemory = renderReport(toStored(run));
  assertEquals(inMemory, renderReport(JSON.parse(JSON.stringify(toStored(run)))));
  assertMatch(inMemory, /\| `\/tokenize` latency p50 \/ p99 \(ms\) +\| +n\/a \/ n\/a \|/);
  assertMatch(inMemory, /\| ↳ added vs direct, p50 \/ p99 \(ms\) +\| +0 \| +n\/a \/ n\/a \|/);
  assertMatch(inMemory, /\| cold start → first token, median \(min–max\) ms +\| +n\/a \(n\/a–n\/a\) \|/);
  assertMatch(inMemory, /wrk is not installed/);
  assertMatch(inMemory, /\| swap at `--models-max 1`: [^|]+\| +n\/a \/ n\/a \|/);
  assertMatch(
    inMemory,
    /\| 8 streams at once: first event, median \(ms\) +\| +n\/a \|.*\| +target: ≤ router \|/,
  );
  assertMatch(inMemory, /\| memory, idle: front process [^|]+\| +— \| +gateway n\/a \/ n\/a \/ n\/a \|/);
  assertMatch(inMemory, /Swap rows: not measured in this run/);
});

Deno.test("bench arguments: defaults measure everything and write the results", () => {
  const opts = parseArgs([]);
  assertEquals(opts.quick, false);
  assertEquals(opts.client, null);
  assertEquals(opts.engineFlags, [...DEFAULT_ENGINE_FLAGS]);
  assertEquals(opts.gatewayArgs, []);
  assertEquals([...opts.phases], [...PHASES]);
  assertEquals(opts.write, true);
  assertEquals(opts.help, false);
});

Deno.test("bench arguments: values are taken verbatim, dashes included, in either form", () => {
  const opts = parseArgs([
    "--quick",
    "--no-write",
    "--client",
    "deno",
    "--engine-flags",
    "-c 1024  -np 2",
    "--gateway-args=--spare-runners 0",
    "--phases=latency,cold",
  ]);
  assertEquals(opts.quick, true);
  assertEquals(opts.write, false);
  assertEquals(opts.client, "deno");
  assertEquals(opts.engineFlags, ["-c", "1024", "-np", "2"]);
  assertEquals(opts.gatewayArgs, ["--spare-runners", "0"]);
  assertEquals([...opts.phases], ["latency", "cold"]);
  assertEquals(parseArgs(["--help"]).help, true);
});

function refusal(args: string[]): unknown {
  try {
    parseArgs(args);
  } catch (err) {
    return err;
  }
  return undefined;
}

Deno.test("bench arguments: anything unknown is refused before a run starts", () => {
  for (
    const args of [
      ["--quik"],
      ["--client", "curl"],
      ["--phases", "latency,warmup"],
      ["--engine-flags"],
      ["--quick=yes"],
    ]
  ) {
    assert(refusal(args) instanceof UsageError, args.join(" "));
  }
});
