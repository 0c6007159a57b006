/**
 * The model lifecycle as named transitions, how an exit counts, and the unload reason it carries.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  classifyExit,
  exitTransition,
  IllegalTransition,
  isAlive,
  type ModelState,
  type Phase,
  type Transition,
  transition,
} from "../../router/scheduler/policies/lifecycle.ts";
import { exitReason, UNLOAD_REASONS } from "../../router/scheduler/policies/unload_reason.ts";

const p = (state: ModelState, stopping = false): Phase => ({ state, stopping });

Deno.test("lifecycle: the legal transitions and where they lead", () => {
  const cases: [Phase, Transition, Phase][] = [
    [p("unloaded"), "startLoad", p("loading")],
    [p("loading"), "ready", p("loaded")],
    [p("loaded"), "ready", p("loaded")],
    [p("sleeping"), "ready", p("loaded")],
    [p("loading", true), "ready", p("loaded", true)],
    [p("loaded"), "sleep", p("sleeping")],
    [p("sleeping"), "wake", p("loading")],
    [p("loading"), "beginStop", p("loading", true)],
    [p("loaded"), "beginStop", p("loaded", true)],
    [p("sleeping"), "beginStop", p("sleeping", true)],
    [p("loaded", true), "exited", p("unloaded")],
    [p("loaded"), "exited", p("unloaded")],
    [p("loading"), "crashed", p("unloaded")],
    [p("sleeping", true), "crashed", p("unloaded")],
    [p("unloaded"), "downloadBegin", p("downloading")],
    [p("downloaded"), "downloadBegin", p("downloading")],
    [p("downloading"), "downloadEnd", p("downloaded")],
    [p("downloaded"), "adopt", p("unloaded")],
  ];
  for (const [from, t, to] of cases) {
    assertEquals(transition(from, t), to, `${t} from ${JSON.stringify(from)}`);
  }
});

Deno.test("lifecycle: transitions out of turn are caught where they happen", () => {
  const cases: [Phase, Transition][] = [
    [p("loading"), "startLoad"],
    [p("loaded", true), "startLoad"], // its old process has not exited yet
    [p("unloaded"), "ready"], // a late ready after the exit
    [p("unloaded"), "exited"],
    [p("unloaded"), "crashed"],
    [p("loaded", true), "beginStop"], // a second stop joins the first instead
    [p("unloaded"), "beginStop"],
    [p("loading"), "sleep"],
    [p("loaded"), "wake"],
    [p("downloading"), "startLoad"],
    [p("downloading"), "downloadBegin"],
    [p("loaded"), "downloadBegin"],
    [p("unloaded"), "downloadEnd"],
    [p("unloaded"), "adopt"],
  ];
  for (const [from, t] of cases) {
    let error: unknown;
    try {
      transition(from, t);
    } catch (err) {
      error = err;
    }
    assert(error instanceof IllegalTransition, `${t} from ${JSON.stringify(from)} is refused`);
    assertEquals(error.transition, t);
  }
});

Deno.test("lifecycle: a process holds its place from startLoad until its exit is observed", () => {
  const cases: [Phase, boolean][] = [
    [p("unloaded"), false],
    [p("loading"), true],
    [p("loaded"), true],
    [p("sleeping"), true],
    [p("loaded", true), true],
    [p("downloading"), false],
    [p("downloaded"), false],
  ];
  for (const [phase, alive] of cases) assertEquals(isAlive(phase), alive, JSON.stringify(phase));
});

Deno.test("lifecycle: how an exit counts, as the scheduler has counted it", () => {
  const cases: [boolean, number, string | null, ReturnType<typeof classifyExit>][] = [
    [true, 0, null, { kind: "stopped", exitCode: 0 }],
    [true, 0, "SIGKILL", { kind: "stopped", exitCode: 1 }],
    [true, 137, "SIGKILL", { kind: "stopped", exitCode: 137 }],
    [false, 0, null, { kind: "exited", exitCode: 0 }],
    [false, 1, null, { kind: "crashed", exitCode: 1 }],
    [false, 0, "SIGSEGV", { kind: "crashed", exitCode: 1 }],
  ];
  for (const [requested, code, signal, want] of cases) {
    assertEquals(classifyExit(requested, code, signal), want, `${requested} ${code} ${signal}`);
  }
  assertEquals(exitTransition("crashed"), "crashed");
  assertEquals(exitTransition("stopped"), "exited");
  assertEquals(exitTransition("exited"), "exited");
});

Deno.test("unload reasons: the reason given at the stop wins; an unasked exit says how it ended", () => {
  assertEquals(UNLOAD_REASONS, ["requested", "evicted", "idle", "reload", "crashed", "memory", "shutdown"]);
  for (const reason of UNLOAD_REASONS) assertEquals(exitReason(reason, true), reason);
  assertEquals(exitReason(undefined, false), "crashed");
  assertEquals(exitReason(undefined, true), "memory");
});
