/**
 * The manual clock the policy tests (and later the scheduler's) run on: it must fire timers exactly
 * as a real event loop would order them, only without waiting.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { delay, ManualClock, realClock } from "../../router/scheduler/policies/clock.ts";

Deno.test("timers fire in order of due time, ties in the order they were set, each at its own time", () => {
  const clock = new ManualClock(1000);
  const fired: string[] = [];
  const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
  clock.setTimer(30, at("c"));
  clock.setTimer(10, at("a1"));
  clock.setTimer(10, at("a2"));
  clock.setTimer(20, at("b"));
  clock.advance(25);
  assertEquals(fired, ["a1@1010", "a2@1010", "b@1020"]);
  assertEquals(clock.now(), 1025);
  assertEquals(clock.pending, 1);
  clock.advance(5);
  assertEquals(fired.at(-1), "c@1030");
  assertEquals(clock.pending, 0);
});

Deno.test("a timer set by a timer runs in the same step when due within it, else stays armed", () => {
  const clock = new ManualClock();
  const fired: number[] = [];
  clock.setTimer(10, () => {
    fired.push(clock.now());
    clock.setTimer(5, () => fired.push(clock.now()));
    clock.setTimer(50, () => fired.push(clock.now()));
  });
  clock.advance(20);
  assertEquals(fired, [10, 15]);
  assertEquals(clock.nextDue, 60);
});

Deno.test("no timer runs synchronously: a zero or negative delay waits for the next advance", () => {
  const clock = new ManualClock();
  let runs = 0;
  clock.setTimer(0, () => runs++);
  clock.setTimer(-5, () => runs++);
  clock.setTimer(Number.NaN, () => runs++);
  assertEquals(runs, 0);
  clock.advance(0);
  assertEquals(runs, 3);
  assertEquals(clock.now(), 0);
});

Deno.test("a cleared timer never runs, even when cleared by a timer due at the same time", () => {
  const clock = new ManualClock();
  const fired: string[] = [];
  const later = clock.setTimer(10, () => fired.push("later"));
  clock.setTimer(10, () => fired.push("gone"));
  const victim = clock.setTimer(10, () => fired.push("victim"));
  clock.clearTimer(later);
  // set before the victim and due with it: it runs first and can still stop it
  const killer = clock.setTimer(5, () => clock.clearTimer(victim));
  clock.advance(10);
  assertEquals(fired, ["gone"]);
  clock.clearTimer(killer); // already run: ignored
  clock.clearTimer(undefined);
  assertEquals(clock.pending, 0);
});

Deno.test("time only moves forward", () => {
  const clock = new ManualClock(5);
  let threw = false;
  try {
    clock.advance(-1);
  } catch (err) {
    threw = err instanceof RangeError;
  }
  assert(threw, "advance(-1) throws a RangeError");
  assertEquals(clock.now(), 5);
});

Deno.test("delay() resolves when the clock reaches it and leaves no timer behind when aborted", async () => {
  const clock = new ManualClock();
  let done = false;
  const waited = delay(clock, 100).then(() => (done = true));
  clock.advance(99);
  await Promise.resolve();
  assertEquals(done, false);
  clock.advance(1);
  await waited;
  assertEquals(done, true);

  const abort = new AbortController();
  const aborted = delay(clock, 100, abort.signal);
  assertEquals(clock.pending, 1);
  abort.abort(new Error("client left"));
  await assertRejects(() => aborted);
  assertEquals(clock.pending, 0);
  await assertRejects(() => delay(clock, 1, abort.signal));
  assertEquals(clock.pending, 0);
});

Deno.test("the real clock is monotonic and on the epoch scale, so expiry times can be shown as dates", () => {
  const a = realClock.now();
  const b = realClock.now();
  assert(b >= a);
  // the two clocks start together; only a wall-clock correction since could part them
  assert(Math.abs(a - Date.now()) < 60_000, `${a} vs ${Date.now()}`);
});
