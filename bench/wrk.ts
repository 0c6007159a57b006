/**
 * Runs wrk (C, epoll, one thread) as the throughput load generator when it is installed: it spends far less
 * CPU per request than any JavaScript client, and on 2 shared cores every cycle the client burns is taken
 * from the servers it measures. POST bodies go through a small Lua script.
 */
import { CpuMeter } from "./procs.ts";

/** wrk's version line, or null when wrk is not installed. */
export async function wrkVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("wrk", { args: ["--version"], stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.split("\n")[0].replace(/\s*Copyright.*$/, "").trim() || "wrk";
  } catch {
    return null;
  }
}

export interface WrkOptions {
  url: string;
  body: unknown;
  connections: number;
  durationMs: number;
  /** pids whose CPU is measured over the middle of the run, with wrk's own */
  watch?: number[];
}

export interface WrkResult {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  connectionsOpened: number;
  /** CPU of `watch` and of wrk itself over the run, bar its first and last few hundred ms */
  meter: CpuMeter;
  pid: number;
}

/** Edges of the run left out of CPU sampling: connection set-up at the start, in-flight requests at the end. */
const CPU_EDGE_MS = 250;

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const script = await Deno.makeTempFile({ prefix: "switchyard-bench-", suffix: ".lua" });
  try {
    const body = JSON.stringify(opts.body);
    if (body.includes("]]")) throw new Error("body cannot go in a Lua long string");
    await Deno.writeTextFile(
      script,
      `wrk.method = "POST"\nwrk.body = [[${body}]]\nwrk.headers["Content-Type"] = "application/json"\n`,
    );
    const seconds = Math.max(1, Math.round(opts.durationMs / 1000));
    const child = new Deno.Command("wrk", {
      args: [
        "-t1",
        `-c${opts.connections}`,
        `-d${seconds}s`,
        "--timeout",
        "10s",
        "--latency",
        "-s",
        script,
        opts.url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const meter = new CpuMeter([...(opts.watch ?? []), child.pid]);
    const startTimer = setTimeout(() => meter.start(), CPU_EDGE_MS);
    const endTimer = setTimeout(() => meter.end(), seconds * 1000 - CPU_EDGE_MS);
    const out = await child.output();
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`wrk failed: ${text}${new TextDecoder().decode(out.stderr)}`);
    const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN);
    const requests = Number(text.match(/(\d+) requests in/)?.[1] ?? NaN);
    const non2xx = Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
    const socketErrors = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
    const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
    return {
      requests,
      errors,
      seconds,
      rps,
      p50Ms: latencyMs(text, "50%"),
      p99Ms: latencyMs(text, "99%"),
      connectionsOpened: NaN,
      meter,
      pid: child.pid,
    };
  } finally {
    await Deno.remove(script).catch(() => {});
  }
}

/** One line of wrk's `--latency` distribution (`50%  312.00us`), in ms. */
function latencyMs(text: string, pct: string): number {
  const m = text.match(new RegExp(`^\\s*${pct}\\s+([\\d.]+)(us|ms|s)\\s*$`, "m"));
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "ms" ? v : v * 1000;
}
