/**
 * Idle TTL: when a model expires, and the races llama-swap lost (#946): a request that arrives as
 * the timer fires, or came and went since it was armed, must win. The races run on the manual
 * clock against a small owner that uses the policy as the scheduler will: a timer only asks, and
 * the answer is computed from the table as it is when the timer fires.
 */
import { assertEquals } from "../helpers/assert.ts";
import { ManualClock, type TimerHandle } from "../../router/scheduler/policies/clock.ts";
import {
  expiresAt,
  type IdleFacts,
  idleVerdict,
  isExpired,
  resolveTtlS,
} from "../../router/scheduler/policies/ttl.ts";

const idle = (over: Partial<IdleFacts> = {}): IdleFacts => ({
  ttlS: 60,
  pinned: false,
  ready: true,
  inflight: 0,
  waiting: 0,
  lastRequestEndedAt: 1_000,
  ...over,
});

Deno.test("ttl: expires_at, or null when the model cannot expire now", () => {
  const cases: [string, Partial<IdleFacts>, number | null][] = [
    ["idle: from the end of the last request", {}, 61_000],
    ["ttl 0 means never", { ttlS: 0 }, null],
    ["pinned models never expire", { pinned: true }, null],
    ["a request in flight", { inflight: 1 }, null],
    ["a request waiting", { waiting: 1 }, null],
    ["not ready (loading or stopping)", { ready: false }, null],
    ["loaded ahead of any request: from when it became ready", {
      lastRequestEndedAt: undefined,
      readyAt: 5_000,
    }, 65_000],
    [
      "reloaded after its last request: from the reload",
      { lastRequestEndedAt: 1_000, readyAt: 9_000 },
      69_000,
    ],
    ["a request after the load: from the request", { lastRequestEndedAt: 9_000, readyAt: 1_000 }, 69_000],
    ["ready, with neither time known", { lastRequestEndedAt: undefined }, null],
  ];
  for (const [name, over, want] of cases) assertEquals(expiresAt(idle(over)), want, name);
});

Deno.test("ttl: expired exactly at expires_at, not a moment before", () => {
  assertEquals(isExpired(idle(), 60_999), false);
  assertEquals(isExpired(idle(), 61_000), true);
  assertEquals(isExpired(idle({ inflight: 1 }), 1e12), false);
  assertEquals(idleVerdict(idle(), 30_000), { kind: "rearm", at: 61_000 });
  assertEquals(idleVerdict(idle(), 61_000), { kind: "stop" });
  assertEquals(idleVerdict(idle({ pinned: true }), 1e12), { kind: "none" });
});

Deno.test("ttl: the model's own ttl wins over --models-ttl; 0 or nonsense is never", () => {
  const cases: [number | undefined, number, number][] = [
    [undefined, 0, 0],
    [undefined, 300, 300],
    [120, 300, 120],
    [0, 300, 0],
    [-1, 300, 0],
    [Number.NaN, 300, 0],
    [Infinity, 300, 0],
  ];
  for (const [own, global, want] of cases) {
    assertEquals(resolveTtlS(own, global), want, `${own} over ${global}`);
  }
});

/**
 * One model's row and its TTL timer, handled as the scheduler will: every change re-arms from the
 * policy's answer, and the timer's callback asks again instead of stopping. `keepStaleTimers`
 * leaves a timer armed across changes, so the tests can show a stale one cannot do harm.
 */
class IdleOwner {
  inflight = 0;
  waiting = 0;
  pinned = false;
  ttlS: number;
  lastRequestEndedAt?: number;
  readyAt?: number;
  stoppedAt?: number;
  fired = 0;
  #timer?: TimerHandle;

  constructor(readonly clock: ManualClock, ttlS: number, readonly keepStaleTimers = false) {
    this.ttlS = ttlS;
    this.readyAt = clock.now();
    this.changed();
  }

  get facts(): IdleFacts {
    return {
      ttlS: this.ttlS,
      pinned: this.pinned,
      ready: this.stoppedAt === undefined,
      inflight: this.inflight,
      waiting: this.waiting,
      lastRequestEndedAt: this.lastRequestEndedAt,
      readyAt: this.readyAt,
    };
  }

  requestStarts(): void {
    this.inflight++;
    this.changed();
  }

  requestEnds(): void {
    this.inflight--;
    this.lastRequestEndedAt = this.clock.now();
    this.changed();
  }

  /** any change of the row: the owner decides again on the row as it now is */
  changed(): void {
    if (!this.keepStaleTimers) this.clock.clearTimer(this.#timer);
    this.#decide();
  }

  #decide(): void {
    if (this.stoppedAt !== undefined) return;
    const verdict = idleVerdict(this.facts, this.clock.now());
    if (verdict.kind === "stop") this.stoppedAt = this.clock.now();
    else if (verdict.kind === "rearm") {
      this.#timer = this.clock.setTimer(verdict.at - this.clock.now(), () => {
        this.fired++;
        this.#decide();
      });
    }
  }
}

Deno.test("ttl race: a request that starts just before the timer fires keeps the model", () => {
  const clock = new ManualClock();
  const owner = new IdleOwner(clock, 10, true);
  clock.advance(9_999);
  owner.requestStarts();
  clock.advance(1); // the stale timer fires at 10 s, with the request in flight
  assertEquals(owner.fired, 1);
  assertEquals(owner.stoppedAt, undefined);
  clock.advance(60_000); // a long request: still no expiry while it runs
  assertEquals(owner.stoppedAt, undefined);
  owner.requestEnds();
  clock.advance(9_999);
  assertEquals(owner.stoppedAt, undefined);
  clock.advance(1);
  assertEquals(owner.stoppedAt, 80_000, "idle 10 s after the request ended");
});

Deno.test("ttl race: a request that came and went since the timer was armed moves the expiry on", () => {
  const clock = new ManualClock();
  const owner = new IdleOwner(clock, 10, true);
  clock.advance(5_000);
  owner.requestStarts();
  clock.advance(1_000);
  owner.requestEnds(); // idle from 6 s: expires at 16 s, not 10 s
  clock.advance(4_000); // the first timer fires at 10 s on a stale view, and only re-arms
  assertEquals(owner.stoppedAt, undefined);
  clock.advance(5_999);
  assertEquals(owner.stoppedAt, undefined);
  clock.advance(1);
  assertEquals(owner.stoppedAt, 16_000);
});

Deno.test("ttl race: a request waiting for the model when the timer fires keeps it", () => {
  const clock = new ManualClock();
  const owner = new IdleOwner(clock, 10, true);
  owner.waiting = 1; // queued behind a load of another model, say: it still wants this one
  clock.advance(10_000);
  assertEquals(owner.stoppedAt, undefined);
  owner.waiting = 0;
  owner.requestStarts();
  owner.requestEnds();
  clock.advance(10_000);
  assertEquals(owner.stoppedAt, 20_000);
});

Deno.test("ttl race: a request and the expiry at the same instant: whichever the owner sees first decides", () => {
  // the request reaches the owner first (its event was queued first): the timer then finds it busy
  const clock = new ManualClock();
  clock.setTimer(10_000, () => owner.requestStarts());
  const owner = new IdleOwner(clock, 10, true);
  clock.advance(10_000);
  assertEquals(owner.fired, 1);
  assertEquals(owner.stoppedAt, undefined);

  // the timer first: the stop is decided, and a request arriving after it finds the model leaving;
  // it is the scheduler's to hold that request until the exit and load the model again, never to
  // skip the load because of the state it saw (llama-swap #946)
  const late = new IdleOwner(new ManualClock(), 10, true);
  late.clock.setTimer(10_000, () => late.requestStarts());
  late.clock.advance(10_000);
  assertEquals(late.stoppedAt, 10_000);
  assertEquals(late.inflight, 1);
  assertEquals(idleVerdict(late.facts, late.clock.now()), { kind: "none" });
});

Deno.test("ttl race: pinned or given no ttl by a reload while the timer is armed: it never fires a stop", () => {
  for (const change of [(o: IdleOwner) => (o.pinned = true), (o: IdleOwner) => (o.ttlS = 0)]) {
    const clock = new ManualClock();
    const owner = new IdleOwner(clock, 10, true);
    clock.advance(5_000);
    change(owner);
    clock.advance(3_600_000);
    assertEquals(owner.stoppedAt, undefined);
    assertEquals(clock.pending, 0);
  }
});

Deno.test("ttl: a reload that shortens the ttl of a model idle long enough stops it at once", () => {
  const clock = new ManualClock();
  const owner = new IdleOwner(clock, 600);
  clock.advance(120_000);
  owner.ttlS = 60;
  owner.changed();
  assertEquals(owner.stoppedAt, 120_000);
  assertEquals(clock.pending, 0);
});

Deno.test("ttl: one timer at a time when every change re-arms", () => {
  const clock = new ManualClock();
  const owner = new IdleOwner(clock, 10);
  for (let i = 0; i < 5; i++) {
    owner.requestStarts();
    clock.advance(100);
    owner.requestEnds();
    assertEquals(clock.pending, 1);
  }
  clock.advance(10_000);
  assertEquals(owner.fired, 1);
  assertEquals(owner.stoppedAt, 10_500);
});
