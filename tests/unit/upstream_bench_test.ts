/**
 * CPU per request of the upstream HTTP/1.1 client against fetch, on the same target in another process (so only
 * the client's CPU is counted): a Deno.serve stub, and llama-server's /health when the engine is there. Off by
 * default (it takes a minute and prints a table); run it with
 *   UPSTREAM_BENCH=1 node_modules/.bin/deno test -A tests/unit/upstream_bench_test.ts
 */
import process from "node:process";
import { writeTinyLlama } from "../fixtures/gguf.ts";
import { engineBinPath, type RunningEngine, startEngine } from "../helpers/llama_server.ts";
import { UpstreamPool } from "../../router/upstream/http1.ts";

const enabled = Deno.env.get("UPSTREAM_BENCH") === "1";
const REQUESTS = Number(Deno.env.get("UPSTREAM_BENCH_REQUESTS") ?? "20000");
const enc = new TextEncoder();

/** The stub: a small JSON answer, the same for every method and path; /sse streams 64 events. */
const STUB = `
const events = Array.from({ length: 64 }, (_, i) => new TextEncoder().encode("data: {\\"i\\":" + i + "}\\n\\n"));
const small = '{"tokens":[1,2,3,4,5,6,7,8],"status":"ok"}';
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) }, async (req) => {
  if (req.body) await req.arrayBuffer();
  if (new URL(req.url).pathname === "/sse") {
    let i = 0;
    return new Response(new ReadableStream({
      pull(c) { if (i < events.length) c.enqueue(events[i++]); else c.close(); },
    }), { headers: { "content-type": "text/event-stream" } });
  }
  return new Response(small, { headers: { "content-type": "application/json" } });
});
`;

async function startStub(): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", STUB],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stub exited");
    out += value;
  }
  reader.releaseLock();
  const port = Number(out.trim());
  return {
    port,
    stop: async () => {
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    },
  };
}

interface Target {
  port: number;
  method: string;
  path: string;
  body: Uint8Array<ArrayBuffer> | null;
  stream: boolean;
}

type Client = (t: Target) => Promise<number>;

function fetchClient(): Client {
  return async (t) => {
    const res = await fetch(`http://127.0.0.1:${t.port}${t.path}`, {
      method: t.method,
      headers: t.body ? { "content-type": "application/json" } : undefined,
      body: t.body,
    });
    if (!t.stream) return (await res.arrayBuffer()).byteLength;
    let n = 0;
    for await (const piece of res.body!) n += piece.length;
    return n;
  };
}

function poolClient(pool: UpstreamPool): Client {
  const jsonHeaders: [string, string][] = [["content-type", "application/json"]];
  return async (t) => {
    const res = await pool.request({
      port: t.port,
      method: t.method,
      pathAndQuery: t.path,
      headers: t.body ? jsonHeaders : [],
      body: t.body,
    });
    if (res.bytes !== null) return res.bytes.length;
    let n = 0;
    for await (const piece of res.stream!) n += piece.length;
    return n;
  };
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** µs of this process's CPU per request, and requests per second, for `count` requests at `concurrency`. */
async function measure(client: Client, t: Target, count: number, concurrency: number) {
  const run = async (n: number) => {
    let left = n;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await client(t);
    }));
  };
  await run(Math.min(2000, count / 5));
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  await run(count);
  const wall = performance.now() - t0;
  return { cpuUs: (cpuMicros() - cpu0) / count, rps: count / (wall / 1000) };
}

Deno.test({
  name: "upstream http1 bench: CPU per request against fetch",
  ignore: !enabled,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const stub = await startStub();
    let engine: RunningEngine | null = null;
    let dir: string | null = null;
    const rows: string[] = [];
    try {
      const body = enc.encode(JSON.stringify({ content: "x".repeat(1000) }));
      const targets: [string, Target, number][] = [
        ["stub GET small JSON", {
          port: stub.port,
          method: "GET",
          path: "/health",
          body: null,
          stream: false,
        }, 1],
        [
          "stub POST 1 KB -> small JSON",
          { port: stub.port, method: "POST", path: "/t", body, stream: false },
          1,
        ],
        ["stub GET SSE, 64 events", {
          port: stub.port,
          method: "GET",
          path: "/sse",
          body: null,
          stream: true,
        }, 20],
      ];
      try {
        await Deno.stat(engineBinPath());
        dir = await Deno.makeTempDir();
        await writeTinyLlama(`${dir}/tiny.gguf`);
        // 16 slots keep 16 HTTP threads (max(n_parallel + 4, cores - 1)) always alive for the 16 sockets.
        engine = await startEngine(engineBinPath(), ["-m", `${dir}/tiny.gguf`, "-c", "2048", "-np", "16"]);
        const port = Number(new URL(engine.url).port);
        targets.push(["llama-server GET /health", {
          port,
          method: "GET",
          path: "/health",
          body: null,
          stream: false,
        }, 1]);
      } catch (err) {
        console.error(`no llama-server target: ${(err as Error).message}`);
      }
      for (const [name, target, divisor] of targets) {
        for (const concurrency of [1, 16]) {
          const count = Math.round(REQUESTS / divisor);
          const pool = new UpstreamPool();
          const f = await measure(fetchClient(), target, count, concurrency);
          const u = await measure(poolClient(pool), target, count, concurrency);
          pool.close();
          rows.push(
            `| ${name} | ${concurrency} | ${count} | ${f.cpuUs.toFixed(1)} | ${u.cpuUs.toFixed(1)} | ` +
              `${(f.cpuUs / u.cpuUs).toFixed(2)}x | ${Math.round(f.rps)} | ${Math.round(u.rps)} |`,
          );
        }
      }
    } finally {
      await engine?.stop();
      if (dir) await Deno.remove(dir, { recursive: true });
      await stub.stop();
    }
    console.log(
      [
        "| target | concurrency | requests | fetch µs CPU/req | upstream µs CPU/req | fetch/upstream | fetch req/s | upstream req/s |",
        "|---|---|---|---|---|---|---|---|",
        ...rows,
      ].join("\n"),
    );
  },
});
