/**
 * Crash-restart backoff, moved out of the scheduler: the same numbers it has always produced, and a
 * crash loop replayed on the manual clock.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { ManualClock } from "../../router/scheduler/policies/clock.ts";
import {
  autoRestartAllowed,
  crashesAfterExit,
  MAX_BACKOFF_MS,
  restartDelayMs,
  STABLE_RUN_MS,
} from "../../router/scheduler/policies/backoff.ts";

Deno.test("backoff: nothing after the first crash, then 1 s, 2 s, 4 s... capped at 30 s", () => {
  const want = [0, 0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  assertEquals(want.map((_, crashes) => restartDelayMs(crashes)), want);
  assertEquals(restartDelayMs(1000), MAX_BACKOFF_MS);
});

Deno.test("backoff: the same delays as the formula scheduler.ts inlined", () => {
  // scheduler.ts, #spawn: record.crashes >= 2 ? Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (record.crashes - 2)) : 0
  const inlined = (crashes: number) => crashes >= 2 ? Math.min(30_000, 1000 * 2 ** (crashes - 2)) : 0;
  for (let crashes = 0; crashes <= 64; crashes++) {
    assertEquals(restartDelayMs(crashes), inlined(crashes), `${crashes}`);
  }
});

Deno.test("backoff: crashes in a row after an exit", () => {
  const now = 1_000_000;
  const cases: [string, Parameters<typeof crashesAfterExit>[0], number][] = [
    ["a clean or requested exit resets the count", { previous: 4, crashed: false, readyAt: now - 1, now }, 0],
    ["a crash while loading adds one", { previous: 2, crashed: true, now }, 3],
    ["the first crash", { previous: 0, crashed: true, now }, 1],
    ["a crash soon after ready adds one", { previous: 3, crashed: true, readyAt: now - 5_000, now }, 4],
    ["exactly 60 s of running is not yet stable", {
      previous: 3,
      crashed: true,
      readyAt: now - STABLE_RUN_MS,
      now,
    }, 4],
    ["after more than 60 s of running the count starts again", {
      previous: 7,
      crashed: true,
      readyAt: now - STABLE_RUN_MS - 1,
      now,
    }, 1],
  ];
  for (const [name, facts, want] of cases) assertEquals(crashesAfterExit(facts), want, name);
});

Deno.test("backoff: only an explicit load restarts a model past --max-crashes", () => {
  assert(autoRestartAllowed(2, 3));
  assert(!autoRestartAllowed(3, 3));
  assert(autoRestartAllowed(1_000_000), "no cap by default");
});

Deno.test("backoff: a crash loop replayed on the clock, then a stable run resets it", () => {
  const clock = new ManualClock();
  let crashes = 0;
  const delays: number[] = [];
  // the engine starts after its delay and crashes 100 ms later, before it is ever ready
  for (let i = 0; i < 6; i++) {
    const delay = restartDelayMs(crashes);
    delays.push(delay);
    clock.advance(delay + 100);
    crashes = crashesAfterExit({ previous: crashes, crashed: true, now: clock.now() });
  }
  assertEquals(delays, [0, 0, 1000, 2000, 4000, 8000]);
  assertEquals(crashes, 6);
  // this time it comes up and runs for two minutes before crashing
  clock.advance(restartDelayMs(crashes));
  const readyAt = clock.now();
  clock.advance(120_000);
  crashes = crashesAfterExit({ previous: crashes, crashed: true, readyAt, now: clock.now() });
  assertEquals(crashes, 1);
  assertEquals(restartDelayMs(crashes), 0);
});
