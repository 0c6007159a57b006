/**
 * The runner process on its own, driven over its raw line protocol, with the stub engine in place
 * of llama-server. Every test ends with no runner and no engine left. A stop that must end gracefully
 * gets `HANG_MS` before its SIGKILL, so that a slow machine's graceful exit never turns into a kill.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { isAlive } from "../../runners/lifeline.ts";
import {
  HANG_MS,
  liveStubEngines,
  LOADS_FOREVER,
  RawRunner,
  stubLaunch,
  waitGone,
} from "./runner_test_helpers.ts";

async function assertNothingLeft(pids: number[]): Promise<void> {
  await waitGone(pids);
  assertEquals(liveStubEngines(), []);
}

type Phase = "loading" | "ready";

/** A runner that has started the stub engine (with `options`; still loading for "loading") and reported `phase`. */
async function startedRunner(phase: Phase, options: string[] = []) {
  const runner = new RawRunner();
  const loadMs = phase === "loading" ? LOADS_FOREVER : [];
  await runner.send({ type: "start", launch: stubLaunch([...loadMs, ...options]) });
  const { message: spawned } = await runner.next("spawned");
  await runner.next(phase === "loading" ? "progress" : "ready");
  return { runner, spawned };
}

/** Waits for the runner to end, then checks that neither it nor its engine is left. */
async function assertEnded(runner: RawRunner, enginePid: number): Promise<void> {
  await runner.done();
  await assertNothingLeft([runner.pid, enginePid]);
}

Deno.test("runner: hello, start, spawned, progress, ready, stop, exit; the engine exits gracefully", async () => {
  const runner = new RawRunner();
  const hello = await runner.next("hello");
  assertEquals(hello.message.pid, runner.pid);
  await runner.send({ type: "start", launch: stubLaunch() });
  const { message: spawned } = await runner.next("spawned");
  const { message: ready } = await runner.next("ready");
  assertEquals(ready.info.id, "stub");
  const health = await fetch(`http://127.0.0.1:${spawned.port}/health`);
  assertEquals(await health.json(), { status: "ok" });
  await runner.send({ type: "stop", timeoutMs: HANG_MS });
  const status = await runner.done();
  assertEquals(status.code, 0);

  const types = runner.types().filter((t) => t !== "log");
  assertEquals(types[0], "hello");
  assertEquals(types[1], "spawned");
  assertEquals(types.at(-1), "exit");
  assertEquals(types.at(-2), "ready");
  const progress = runner.messages.flatMap((m) => m.message.type === "progress" ? [m.message.progress] : []);
  assertEquals(progress.map((p) => p.value), [0, 0.25, 0.5, 0.75, 1]);
  assertEquals(runner.messages.at(-1)!.message, { type: "exit", code: 0, signal: null });
  assert(
    runner.messages.some((m) => m.message.type === "log" && m.message.line.includes("exit command received")),
  );
  await assertNothingLeft([runner.pid, spawned.enginePid]);
});

Deno.test("runner: a stop the engine ignores escalates to SIGKILL after timeoutMs", async () => {
  const { runner, spawned } = await startedRunner("ready", ["--ignore-exit"]);
  const stopAt = await runner.send({ type: "stop", timeoutMs: 300 });
  const { at, message: exit } = await runner.next("exit");
  assertEquals(exit, { type: "exit", code: 137, signal: "SIGKILL" });
  assert(at - stopAt >= 290, `killed after ${at - stopAt} ms`);
  assert(runner.messages.some((m) => m.message.type === "log" && m.message.line.includes("ignoring it")));
  await assertEnded(runner, spawned.enginePid);
});

Deno.test("runner: an exit line the engine loses is followed by SIGTERM, still a graceful exit", async () => {
  const { runner, spawned } = await startedRunner("ready", ["--lose-exit"]);
  const stopAt = await runner.send({ type: "stop", timeoutMs: HANG_MS });
  const { at, message: exit } = await runner.next("exit");
  // a graceful exit (not the SIGKILL due after 10 s), and not before the 1 s nudge: the SIGTERM ended it
  assertEquals(exit, { type: "exit", code: 0, signal: null });
  assert(at - stopAt >= 900, `exited after ${at - stopAt} ms`);
  assert(
    runner.messages.some((m) => m.message.type === "log" && m.message.line.includes("SIGTERM received")),
  );
  await assertEnded(runner, spawned.enginePid);
});

Deno.test("runner: a stop during loading sends SIGTERM (llama-server does not read stdin yet)", async () => {
  const { runner, spawned } = await startedRunner("loading");
  await runner.send({ type: "stop", timeoutMs: HANG_MS });
  const { message: exit } = await runner.next("exit");
  assertEquals(exit.signal, "SIGTERM");
  await assertEnded(runner, spawned.enginePid);
});

Deno.test("runner: kill SIGKILLs the engine at once", async () => {
  const { runner, spawned } = await startedRunner("ready");
  await runner.send({ type: "kill" });
  assertEquals((await runner.next("exit")).message.signal, "SIGKILL");
  await assertEnded(runner, spawned.enginePid);
});

Deno.test("runner: kill cuts a pending graceful stop short", async () => {
  const { runner, spawned } = await startedRunner("ready", ["--ignore-exit"]);
  // the stop would SIGKILL only after an hour: an exit before that is the kill's doing
  await runner.send({ type: "stop", timeoutMs: 3_600_000 });
  // the engine got the exit line and ignored it: the graceful stop is pending
  await runner.log("exit command received, ignoring it");
  await runner.send({ type: "kill" });
  const { message: exit } = await runner.next("exit");
  assertEquals(exit.signal, "SIGKILL");
  await assertEnded(runner, spawned.enginePid);
});

Deno.test("runner: EOF on its stdin (the gateway died) kills the engine and ends the runner", async (t) => {
  for (const phase of ["loading", "ready"] as Phase[]) {
    await t.step(phase, async () => {
      const { runner, spawned } = await startedRunner(phase);
      await runner.closeStdin();
      await assertEnded(runner, spawned.enginePid);
    });
  }
});

Deno.test("runner: SIGKILL of the runner takes its engine down within 5 s", async (t) => {
  for (const phase of ["loading", "ready"] as Phase[]) {
    await t.step(phase, async () => {
      const { runner, spawned } = await startedRunner(phase);
      assert(isAlive(spawned.enginePid));
      runner.kill("SIGKILL");
      await runner.done();
      const took = await waitGone([spawned.enginePid], 5_000);
      console.log(`  engine gone ${took.toFixed(0)} ms after its runner was SIGKILLed (${phase})`);
      await assertNothingLeft([runner.pid, spawned.enginePid]);
    });
  }
});

Deno.test("runner: a port lost to another process is retried on a new port", async () => {
  const countFile = await Deno.makeTempFile();
  try {
    const runner = new RawRunner();
    await runner.send({ type: "start", launch: stubLaunch(["--fail-bind", "2", "--count-file", countFile]) });
    await runner.next("ready");
    const spawned = runner.messages.flatMap((m) => m.message.type === "spawned" ? [m.message] : []);
    assertEquals(spawned.length, 3);
    assertEquals(await Deno.readTextFile(countFile), "3");
    await runner.send({ type: "stop", timeoutMs: HANG_MS });
    assertEquals((await runner.next("exit")).message.code, 0);
    await runner.done();
    await assertNothingLeft([runner.pid, ...spawned.map((s) => s.enginePid)]);
  } finally {
    await Deno.remove(countFile);
  }
});

Deno.test("runner: gives up after 3 port retries and reports the engine's exit", async () => {
  const countFile = await Deno.makeTempFile();
  try {
    const runner = new RawRunner();
    await runner.send({
      type: "start",
      launch: stubLaunch(["--fail-bind", "10", "--count-file", countFile]),
    });
    assertEquals((await runner.next("exit")).message, { type: "exit", code: 1, signal: null });
    assertEquals(runner.types().filter((t) => t === "spawned").length, 4);
    await runner.done();
    await assertNothingLeft([runner.pid]);
  } finally {
    await Deno.remove(countFile);
  }
});

Deno.test("runner: a missing engine binary is reported as a log line and exit 127", async () => {
  const runner = new RawRunner();
  await runner.send({ type: "start", launch: { bin: "/nonexistent/llama-server", args: [], env: {} } });
  assertEquals((await runner.next("exit")).message, { type: "exit", code: 127, signal: null });
  assert(runner.messages.some((m) => m.message.type === "log" && m.message.line.includes("/nonexistent")));
  assertEquals(runner.types().includes("spawned"), false);
  await runner.done();
});

Deno.test("runner: an idle runner exits on stop, and on stdin EOF", async () => {
  const stopped = new RawRunner();
  await stopped.next("hello");
  await stopped.send({ type: "stop", timeoutMs: 1000 });
  assertEquals((await stopped.next("exit")).message, { type: "exit", code: 0, signal: null });
  await stopped.done();

  const released = new RawRunner();
  await released.next("hello");
  await released.closeStdin();
  assertEquals((await released.done()).code, 0);
  assertEquals(released.types(), ["hello"]);
});

Deno.test("runner: sleeping is reported; engine lines of 1 MB arrive whole", async () => {
  const runner = new RawRunner();
  await runner.send({
    type: "start",
    launch: stubLaunch(["--sleep-after-ms", "50", "--log-bytes", "1048576"]),
  });
  await runner.next("sleeping");
  const big = runner.messages.find((m) => m.message.type === "log" && m.message.line.length > 1_000_000);
  assert(big, "the 1 MB log line");
  const { message: spawned } = await runner.next("spawned");
  await runner.send({ type: "stop", timeoutMs: HANG_MS });
  await runner.done();
  await assertNothingLeft([runner.pid, spawned.enginePid]);
});
