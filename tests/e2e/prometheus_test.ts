/**
 * A real Prometheus (Debian's `prometheus`, which `.ci/run` installs when missing) scrapes a real
 * gateway serving two real engines, and the test asks Prometheus's HTTP API what it stored: the
 * request and token counters per model, with the values the test's own traffic implies (its request
 * counts, and the tokens the engines reported in the answers the test got), and each engine's own
 * `llamacpp:*` series under its model, whose count of generated tokens must agree with the gateway's.
 * Without the binary the test is skipped and says why.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { withGateway } from "../helpers/gateway.ts";
import { engineAvailable, type HasUrl, postJson } from "../helpers/http.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import { tiedToParent } from "../../runners/lifeline.ts";

const PROMETHEUS = "prometheus";

/** Why the test cannot run here, or undefined when it can. */
async function prometheusMissing(): Promise<string | undefined> {
  const probe = await new Deno.Command(PROMETHEUS, { args: ["--version"], stdout: "null", stderr: "null" })
    .output().catch(() => undefined);
  if (probe?.success) return undefined;
  const why = "prometheus is not installed: 'apt-get install -y prometheus' (.ci/run does it) runs this test";
  console.error(`skipping the Prometheus test: ${why}`);
  return why;
}

const noPrometheus = await prometheusMissing();
const noEngine = noPrometheus ? undefined : await engineAvailable();

/** A port nothing listens on now, on loopback. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface RunningPrometheus extends HasUrl {
  /** the value of a PromQL expression that yields one series; undefined while it yields none */
  value(query: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Starts Prometheus scraping `target` (`host:port`) every second, its data in a temporary folder. */
async function startPrometheus(target: string): Promise<RunningPrometheus> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-prometheus-" });
  const config = join(dir, "prometheus.yml");
  // the README's example scrape config, scraping often so that the test is quick
  await Deno.writeTextFile(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "scrape_configs:",
      "  - job_name: switchyard",
      "    metrics_path: /metrics",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      "",
    ].join("\n"),
  );
  const port = freePort();
  const { cmd, args } = tiedToParent(PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn",
  ]);
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "piped" }).spawn();
  const stderr = new Response(child.stderr).text();
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitFor(
      () => fetch(`${url}/-/ready`).then((r) => (r.body?.cancel(), r.ok), () => false),
      HANG_MS,
      "Prometheus ready",
      100,
    );
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; its log:\n${await stderr}`);
  }
  return {
    url,
    stop,
    async value(query) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
      const body = await res.json();
      if (body.status !== "success") throw new Error(`${query}: ${JSON.stringify(body)}`);
      const result = body.data.result as { value: [number, string] }[];
      if (result.length > 1) throw new Error(`${query}: ${result.length} series`);
      return result.length ? Number(result[0].value[1]) : undefined;
    },
  };
}

interface Tokens {
  prompt: number;
  generated: number;
}

/** A non-streamed chat; returns the tokens its answer's `usage` reports. */
async function chat(gw: HasUrl, model: string, maxTokens: number): Promise<Tokens> {
  const res = await postJson(gw, "/v1/chat/completions", {
    model,
    messages: [{ role: "user", content: "count to ten" }],
    max_tokens: maxTokens,
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return { prompt: body.usage.prompt_tokens, generated: body.usage.completion_tokens };
}

/** A streamed `/completion`; returns the tokens its last event's timings report. */
async function streamedCompletion(gw: HasUrl, model: string, nPredict: number): Promise<Tokens> {
  const res = await postJson(gw, "/completion", {
    prompt: "once upon a time",
    n_predict: nPredict,
    stream: true,
    model,
  });
  assertEquals(res.status, 200);
  const events = (await res.text()).split("\n").filter((l) => l.startsWith("data: ")).map((l) =>
    JSON.parse(l.slice(6))
  );
  const { timings } = events.at(-1);
  return { prompt: timings.prompt_n + timings.cache_n, generated: timings.predicted_n };
}

const add = (a: Tokens, b: Tokens): Tokens => ({
  prompt: a.prompt + b.prompt,
  generated: a.generated + b.generated,
});

Deno.test({
  name:
    "a real Prometheus scrapes the gateway: requests and tokens per model, each engine's own series labelled",
  ignore: !!noPrometheus || !!noEngine,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withGateway(["alpha", "beta"], { args: ["-c", "512", "-np", "1"] }, async (gw) => {
      const expected: Record<string, { requests: Record<string, number>; tokens: Tokens }> = {
        alpha: {
          requests: { "/v1/chat/completions": 3, "/completion": 1 },
          tokens: { prompt: 0, generated: 0 },
        },
        beta: {
          requests: { "/v1/chat/completions": 1, "/completion": 2 },
          tokens: { prompt: 0, generated: 0 },
        },
      };
      // generations bounded by tokens; each model's answers say how many
      for (const [model, counts] of Object.entries(expected)) {
        for (let i = 0; i < counts.requests["/v1/chat/completions"]; i++) {
          counts.tokens = add(counts.tokens, await chat(gw, model, 4 + i));
        }
        for (let i = 0; i < counts.requests["/completion"]; i++) {
          counts.tokens = add(counts.tokens, await streamedCompletion(gw, model, 3 + i));
        }
      }
      for (const { tokens } of Object.values(expected)) {
        assert(
          tokens.prompt > 0 && tokens.generated > 0,
          `the answers reported tokens: ${JSON.stringify(tokens)}`,
        );
      }
      const prometheus = await startPrometheus(new URL(gw.url).host);
      try {
        const series = (name: string, labels: Record<string, string>) =>
          `${name}{job="switchyard",${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",")}}`;
        const wanted: [string, number][] = [];
        for (const [model, counts] of Object.entries(expected)) {
          for (const [endpoint, n] of Object.entries(counts.requests)) {
            wanted.push([series("switchyard_requests_total", { model, endpoint, status: "200" }), n]);
          }
          wanted.push([series("switchyard_tokens_total", { model, type: "prompt" }), counts.tokens.prompt]);
          wanted.push([
            series("switchyard_tokens_total", { model, type: "generated" }),
            counts.tokens.generated,
          ]);
          // the engine's own count of what it generated, relabelled: it agrees with the answers'
          wanted.push([series("llamacpp:tokens_predicted_total", { model }), counts.tokens.generated]);
          wanted.push([series("switchyard_model_loads_total", { model, result: "success" }), 1]);
          wanted.push([
            series("switchyard_time_to_first_token_seconds_count", { model }),
            counts.requests["/completion"],
          ]);
        }
        wanted.push([series("switchyard_models", { state: "loaded" }), 2]);
        wanted.push([`up{job="switchyard"}`, 1]);
        // Prometheus has them once a scrape after the traffic is stored
        let seen: (number | undefined)[] = [];
        await waitFor(
          async () => {
            seen = await Promise.all(wanted.map(([query]) => prometheus.value(query)));
            return seen.every((v, i) => v === wanted[i][1]);
          },
          HANG_MS,
          "Prometheus's answers",
          250,
        ).catch((err) => {
          const table = wanted.map(([q, v], i) => `${q}: expected ${v}, got ${seen[i]}`).join("\n");
          throw new Error(`${(err as Error).message}\n${table}`);
        });
      } finally {
        await prometheus.stop();
      }
    });
  },
});
