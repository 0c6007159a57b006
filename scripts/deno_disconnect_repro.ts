/**
 * Deno's HTTP server does not always tell a handler that its client left: a repro, without Switchyard.
 *
 * A server in a child process answers each POST after 2 s and records whether `request.signal` aborted
 * meanwhile. The client sends a request that holds the server (`/busy`), then one it gives up on after
 * 1 s (`/queued`) by closing the socket, as llama.cpp's `test_router_queue_client_disconnect_keeps_model`
 * does through Python's `requests`. With the head and the body in one write every disconnect is heard
 * (`--one-write`: 0 of 8 missed); with the body in a second write, as `requests` sends them, most are
 * never heard: measured here, 5 of 8 on 2 cores and 7 of 8 with `taskset -c 0`, whether the handler
 * reads the body whole, with a reader, or not at all. Switchyard learns of a queued client's
 * departure only from that signal, so llama.cpp's test fails when Deno misses it. Deno's own issue on
 * cancellation before the response: denoland/deno#21653.
 *
 *   deno run -A scripts/deno_disconnect_repro.ts [ROUNDS] [--one-write]
 */
import { forEachLine } from "../runners/lines.ts";

const HOLD_MS = 2000;
const GIVE_UP_MS = 1000;

async function serve(port: number): Promise<void> {
  Deno.serve({ port, hostname: "127.0.0.1", onListen: () => console.log("listening") }, async (req) => {
    const start = performance.now();
    let heardAfter = -1;
    req.signal.addEventListener("abort", () => heardAfter = performance.now() - start);
    await req.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    if (new URL(req.url).pathname === "/queued") {
      console.log(heardAfter < 0 ? "missed" : `heard after ${heardAfter.toFixed(0)} ms`);
    }
    return new Response("ok");
  });
  await new Promise(() => {});
}

async function post(port: number, path: string, oneWrite: boolean, giveUpMs?: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const body = '{"model":"b","content":"hello"}';
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${body.length}\r\n\r\n`;
  const encoder = new TextEncoder();
  if (oneWrite) {
    await conn.write(encoder.encode(head + body));
  } else {
    await conn.write(encoder.encode(head));
    await conn.write(encoder.encode(body));
  }
  if (giveUpMs !== undefined) await new Promise((resolve) => setTimeout(resolve, giveUpMs));
  else await conn.read(new Uint8Array(4096));
  conn.close();
}

async function main(rounds: number, oneWrite: boolean): Promise<void> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-no-legacy-abort", import.meta.filename!, "--serve", String(port)],
    stdout: "piped",
  }).spawn();
  // the server's lines, each awaited in turn: "listening", then one verdict per round
  const lines: string[] = [];
  let arrived = Promise.withResolvers<void>();
  const reading = forEachLine(child.stdout, (line) => {
    lines.push(line);
    arrived.resolve();
    arrived = Promise.withResolvers<void>();
  });
  const nextLine = async (): Promise<string> => {
    while (lines.length === 0) await arrived.promise;
    return lines.shift()!;
  };
  await nextLine();
  const verdicts: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const busy = post(port, "/busy", oneWrite);
    await new Promise((resolve) => setTimeout(resolve, GIVE_UP_MS / 2));
    await post(port, "/queued", oneWrite, GIVE_UP_MS);
    // the queued handler reports once its hold is over, after the busy one's
    verdicts.push(await nextLine());
    await busy;
  }
  child.kill();
  await Promise.all([child.status, reading]);
  console.log(verdicts.join("\n"));
  const missed = verdicts.filter((v) => v === "missed").length;
  console.log(
    `${oneWrite ? "head and body in one write" : "body in a second write"}: missed ${missed} of ${rounds}`,
  );
}

if (Deno.args[0] === "--serve") await serve(Number(Deno.args[1]));
else await main(Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 8), Deno.args.includes("--one-write"));
