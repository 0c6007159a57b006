/**
 * The gateway's side: RunnerPool with spare runners, handles, and what happens when a runner or the
 * gateway itself dies. The stub engine stands in for llama-server.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { isAlive } from "../../runners/lifeline.ts";
import type { RunnerMessage } from "../../runners/protocol.ts";
import { RunnerPool } from "../../runners/supervisor.ts";
import { liveStubEngines, rssKiB, stubLaunch, waitFor, waitGone } from "./runner_test_helpers.ts";

function recorder() {
  const messages: { at: number; message: RunnerMessage }[] = [];
  const onMessage = (message: RunnerMessage) => messages.push({ at: performance.now(), message });
  const first = (type: RunnerMessage["type"]) => messages.find((m) => m.message.type === type);
  const waitType = (type: RunnerMessage["type"], ms = 10_000) =>
    waitFor(() => first(type) !== undefined, ms, `message ${type}`).then(() => first(type)!);
  return { messages, onMessage, first, waitType };
}

/** Spare runners take a moment to start; tests that measure reuse wait for them. */
function waitSpares(pool: RunnerPool, count: number): Promise<number> {
  return waitFor(() => pool.live().runners.length >= count, 10_000, `${count} runners`);
}

Deno.test("pool: start hands the launch to the spare runner and starts a new spare", async () => {
  const pool = new RunnerPool({ spares: 1 });
  await waitSpares(pool, 1);
  const [spare] = pool.live().runners;
  // give the spare time to say hello, as it would have in a gateway that has been up a while
  await new Promise((r) => setTimeout(r, 300));
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

  await runner.stop(5_000);
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
  const stubborn = pool.start(stubLaunch(["--ignore-exit"]), () => {});
  const plain = pool.start(stubLaunch(), () => {});
  await Promise.all([stubborn.port, plain.port]);
  await waitFor(() => pool.live().engines.length === 2, 10_000, "two engines");
  // the stub reads stdin only once ready; give both time to get there
  await new Promise((r) => setTimeout(r, 300));
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
  // A throwaway gateway: one model running, one spare waiting; it prints the pids and idles.
  const code = `
    import { RunnerPool } from ${JSON.stringify(supervisor)};
    const pool = new RunnerPool({ spares: 1 });
    const runner = pool.start(${launch}, (m) => {
      if (m.type === "ready") setTimeout(() => console.log(JSON.stringify(pool.live())), 300);
    });
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
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssKiB(pool.live().runners[0]);
  const rec = recorder();
  const runner = pool.start(stubLaunch(["--sleep-after-ms", "100000"]), rec.onMessage);
  await rec.waitType("ready");
  await new Promise((r) => setTimeout(r, 500));
  const busy = rssKiB(runner.pid);
  console.log(
    `  runner VmRSS: idle ${(idle / 1024).toFixed(1)} MiB, driving an engine ${(busy / 1024).toFixed(1)} MiB`,
  );
  assert(isAlive(runner.pid));
  await pool.shutdown();
  assertEquals(liveStubEngines(), []);
});
