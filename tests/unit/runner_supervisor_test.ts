/**
 * The gateway's side: RunnerPool with spare runners, handles, and what happens when a runner or the
 * gateway itself dies. The stub engine stands in for llama-server.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { isAlive } from "../../runners/lifeline.ts";
import type { RunnerMessage } from "../../runners/protocol.ts";
import { RunnerPool } from "../../runners/supervisor.ts";
import {
  delay,
  HANG_MS,
  liveStubEngines,
  rssKiB,
  stubLaunch,
  waitFor,
  waitGone,
} from "./runner_test_helpers.ts";

function recorder() {
  const messages: { at: number; message: RunnerMessage }[] = [];
  const onMessage = (message: RunnerMessage) => messages.push({ at: performance.now(), message });
  const first = (type: RunnerMessage["type"]) => messages.find((m) => m.message.type === type);
  const waitType = (type: RunnerMessage["type"], ms = HANG_MS) =>
    waitFor(() => first(type) !== undefined, ms, `message ${type}`).then(() => first(type)!);
  return { messages, onMessage, first, waitType };
}

/** Spare runners take a moment to start; tests that measure reuse wait for them. */
function waitSpares(pool: RunnerPool, count: number): Promise<number> {
  return waitFor(() => pool.live().runners.length >= count, HANG_MS, `${count} runners`);
}

/**
 * Lets a spare runner finish starting (its hello, its warm-up spawn) before a measurement, as in a gateway
 * that has been up a while. Only the printed numbers depend on it, never a verdict.
 */
const settleForMeasurement = () => delay(300);

Deno.test("pool: start hands the launch to the spare runner and starts a new spare", async () => {
  const pool = new RunnerPool({ spares: 1 });
  await waitSpares(pool, 1);
  const [spare] = pool.live().runners;
  await settleForMeasurement();
  const rec = recorder();
  const startedAt = performance.now();
  const runner = pool.start(stubLaunch(), rec.onMessage);
  assertEquals(runner.pid, spare);
  const spawned = await rec.waitType("spawned");
  const port = await runner.port;
  const ready = await rec.waitType("ready");
  assert(spawned.message.type === "spawned" && spawned.message.port === port);
  assertEquals(runner.enginePid, spawned.message.enginePid);
  console.log(
    `  stub engine via spare runner: start→spawned ${(spawned.at - startedAt).toFixed(1)} ms, ` +
      `start→ready ${(ready.at - startedAt).toFixed(1)} ms`,
  );
  await waitSpares(pool, 2);
  const live = pool.live();
  assertEquals(live.runners.length, 2);
  assertEquals(live.engines, [runner.enginePid!]);

  await runner.stop(HANG_MS);
  assertEquals(await runner.exited, { code: 0, signal: null });
  assertEquals(rec.messages.at(-1)!.message, { type: "exit", code: 0, signal: null });
  assertEquals(rec.messages.filter((m) => m.message.type === "exit").length, 1);
  assertEquals(runner.enginePid, null);
  const pids = [spare, spawned.message.type === "spawned" ? spawned.message.enginePid : 0];
  await pool.shutdown();
  await waitGone([...pids, ...live.runners]);
  assertEquals(pool.live(), { runners: [], engines: [] });
  assertEquals(liveStubEngines(), []);
});

Deno.test("pool: with no spares each start spawns its runner", async () => {
  const pool = new RunnerPool({ spares: 0 });
  assertEquals(pool.live().runners, []);
  const rec = recorder();
  const runner = pool.start(stubLaunch(), rec.onMessage);
  await rec.waitType("ready");
  assertEquals(pool.live().runners, [runner.pid]);
  await pool.shutdown();
  assertEquals((await runner.exited).code, 0);
  await waitGone([runner.pid]);
  assertEquals(liveStubEngines(), []);
});

Deno.test("pool: a runner that dies unannounced gets a synthesized exit, and its engine dies too", async () => {
  const pool = new RunnerPool({ spares: 0 });
  const rec = recorder();
  const runner = pool.start(stubLaunch(), rec.onMessage);
  await runner.port;
  await rec.waitType("ready");
  const enginePid = runner.enginePid!;
  Deno.kill(runner.pid, "SIGKILL");
  assertEquals(await runner.exited, { code: 137, signal: "SIGKILL" });
  assertEquals(rec.messages.at(-1)!.message, { type: "exit", code: 137, signal: "SIGKILL" });
  await waitGone([runner.pid, enginePid]);
  await pool.shutdown();
  assertEquals(liveStubEngines(), []);
});

Deno.test("pool: the port promise rejects when the engine never binds", async () => {
  const pool = new RunnerPool({ spares: 0 });
  const rec = recorder();
  const runner = pool.start({ bin: "/nonexistent/llama-server", args: [], env: {} }, rec.onMessage);
  await assertRejects(() => runner.port);
  assertEquals(await runner.exited, { code: 127, signal: null });
  await pool.shutdown();
});

Deno.test("pool: stop escalates to SIGKILL; kill is immediate", async () => {
  const pool = new RunnerPool({ spares: 0 });
  const [stubbornRec, plainRec] = [recorder(), recorder()];
  const stubborn = pool.start(stubLaunch(["--ignore-exit"]), stubbornRec.onMessage);
  const plain = pool.start(stubLaunch(), plainRec.onMessage);
  // the stub reads stdin (and ignores SIGTERM) only once ready: before that a stop would be a SIGTERM
  await Promise.all([stubbornRec.waitType("ready"), plainRec.waitType("ready")]);
  assertEquals(pool.live().engines.length, 2);
  const stopping = stubborn.stop(200);
  plain.kill();
  assertEquals(await plain.exited, { code: 137, signal: "SIGKILL" });
  await stopping;
  assertEquals(await stubborn.exited, { code: 137, signal: "SIGKILL" });
  await pool.shutdown();
  assertEquals(liveStubEngines(), []);
});

Deno.test("pool: SIGKILL of the gateway takes its runners and engines down within 5 s", async () => {
  const supervisor = new URL("../../runners/supervisor.ts", import.meta.url).href;
  const launch = JSON.stringify(stubLaunch());
  // A throwaway gateway: one model running, one spare waiting; once both are there it prints the pids and
  // idles. The spare that replaces the one the model took is started after the model is ready.
  const code = `
    import { RunnerPool } from ${JSON.stringify(supervisor)};
    const pool = new RunnerPool({ spares: 1 });
    let ready = false;
    pool.start(${launch}, (m) => {
      if (m.type === "ready") ready = true;
    });
    const poll = setInterval(() => {
      const live = pool.live();
      if (!ready || live.runners.length < 2) return;
      clearInterval(poll);
      console.log(JSON.stringify(live));
    }, 20);
    setInterval(() => {}, 1000);
  `;
  const gateway = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = gateway.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const live = JSON.parse(text) as { runners: number[]; engines: number[] };
  assertEquals(live.runners.length, 2);
  assertEquals(live.engines.length, 1);
  gateway.kill("SIGKILL");
  await gateway.status;
  await reader.cancel();
  const took = await waitGone([...live.runners, ...live.engines], 5_000);
  console.log(`  runners and engine gone ${took.toFixed(0)} ms after the gateway was SIGKILLed`);
  assertEquals(liveStubEngines(), []);
});

Deno.test("pool: a runner's resident memory, idle and driving an engine", async () => {
  const pool = new RunnerPool({ spares: 1 });
  await waitSpares(pool, 1);
  await settleForMeasurement();
  const idle = rssKiB(pool.live().runners[0]);
  const rec = recorder();
  const runner = pool.start(stubLaunch(["--sleep-after-ms", "100000"]), rec.onMessage);
  await rec.waitType("ready");
  await settleForMeasurement();
  const busy = rssKiB(runner.pid);
  console.log(
    `  runner VmRSS: idle ${(idle / 1024).toFixed(1)} MiB, driving an engine ${(busy / 1024).toFixed(1)} MiB`,
  );
  assert(isAlive(runner.pid));
  await pool.shutdown();
  assertEquals(liveStubEngines(), []);
});
