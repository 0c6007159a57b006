/**
 * The per-request families the gateway keeps itself (router/metrics/request_families.ts) write the
 * same page as prom-client's own Counter and Histogram fed the same requests.
 */
import { Counter, Histogram, Registry } from "prom-client";
import { assertEquals } from "../helpers/assert.ts";
import { register, RequestFamilies } from "../../router/metrics/request_families.ts";
import type { FinishedRequest } from "../../router/metrics/tap.ts";

const BUCKETS = { duration: [0.01, 0.1, 1], firstToken: [0.005, 0.05], queueWait: [0.001, 0.1] };

function requests(): FinishedRequest[] {
  const out: FinishedRequest[] = [];
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 200; i++) {
    const routed = next() > 0.1;
    out.push({
      startedAt: i,
      model: routed ? ["a", "b"][i % 2] : undefined,
      endpoint: ["/v1/completions", "/tokenize"][i % 3 === 0 ? 1 : 0],
      status: [200, 200, 400, 503][Math.floor(next() * 4)],
      streamed: next() > 0.5,
      queueWaitMs: next() > 0.3 ? next() * 200 : undefined,
      firstChunkMs: next() > 0.2 ? next() * 100 : undefined,
      durationMs: next() * 2000,
      usage: next() > 0.5 ? { prompt: Math.floor(next() * 50), generated: Math.floor(next() * 50) } : {},
    });
  }
  return out;
}

/** The same families with prom-client's classes, fed as the gateway fed them before. */
function reference(rs: FinishedRequest[]): Registry {
  const registers = [new Registry()];
  const count = new Counter({ name: "r", help: "h", labelNames: ["model", "endpoint", "status"], registers });
  const duration = new Histogram({
    name: "d",
    help: "h",
    labelNames: ["model", "endpoint"],
    buckets: BUCKETS.duration,
    registers,
  });
  const first = new Histogram({
    name: "f",
    help: "h",
    labelNames: ["model"],
    buckets: BUCKETS.firstToken,
    registers,
  });
  const queue = new Histogram({
    name: "q",
    help: "h",
    labelNames: ["model"],
    buckets: BUCKETS.queueWait,
    registers,
  });
  const tokens = new Counter({ name: "t", help: "h", labelNames: ["model", "type"], registers });
  for (const r of rs) {
    const model = r.model ?? "";
    count.inc({ model, endpoint: r.endpoint, status: String(r.status) });
    duration.observe({ model, endpoint: r.endpoint }, r.durationMs / 1000);
    if (r.model === undefined) continue;
    if (r.queueWaitMs !== undefined) queue.observe({ model }, r.queueWaitMs / 1000);
    if (r.streamed && r.firstChunkMs !== undefined) first.observe({ model }, r.firstChunkMs / 1000);
    if (r.usage.prompt) tokens.inc({ model, type: "prompt" }, r.usage.prompt);
    if (r.usage.generated) tokens.inc({ model, type: "generated" }, r.usage.generated);
  }
  return registers[0];
}

/** A page's lines, sorted: the two may list a family's series in another order, which Prometheus ignores. */
const lines = async (registry: Registry) => (await registry.metrics()).split("\n").filter(Boolean).sort();

Deno.test("request families: the page prom-client's own classes would write for the same requests", async () => {
  const rs = requests();
  const families = new RequestFamilies(BUCKETS);
  const registry = new Registry();
  register(registry, families.requests("r", "h"));
  register(registry, families.durations("d", "h"));
  register(registry, families.firstTokens("f", "h"));
  register(registry, families.queueWaits("q", "h"));
  register(registry, families.tokens("t", "h"));
  for (const r of rs) families.finished(r);
  assertEquals(await lines(registry), await lines(reference(rs)));
});

Deno.test("request families: before any request, each family is its HELP and TYPE lines only", async () => {
  const families = new RequestFamilies(BUCKETS);
  const registry = new Registry();
  register(registry, families.durations("d", "h"));
  register(registry, families.tokens("t", "h"));
  assertEquals(await lines(registry), ["# HELP d h", "# HELP t h", "# TYPE d histogram", "# TYPE t counter"]);
});
