/**
 * Admission by memory and by count: each case is the table as the scheduler would see it at the
 * moment a request asks for a model, and the one decision it must get.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  type AdmissionDecision,
  type AdmissionRequest,
  admit,
  type Claim,
} from "../../router/scheduler/policies/admission.ts";
import { formatBytes } from "../../router/scheduler/policies/device_bytes.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const claim = (modelId: string, phase: Claim["phase"], bytes: Claim["bytes"], pinned = false): Claim => ({
  modelId,
  phase,
  bytes,
  pinned,
});

function request(over: Partial<AdmissionRequest>): AdmissionRequest {
  return {
    modelId: "new",
    need: {},
    claims: [],
    budgets: { CUDA0: 16 * GiB, Host: 32 * GiB },
    modelsMax: 0,
    serialisedDevices: ["CUDA0", "CUDA1"],
    ...over,
  };
}

/** The decision without its message, which the message tests check on their own. */
function shape(d: AdmissionDecision): Record<string, unknown> {
  const { message: _message, ...rest } = d as AdmissionDecision & { message?: string };
  return rest;
}

const cases: { name: string; req: Partial<AdmissionRequest>; want: Record<string, unknown> }[] = [
  {
    name: "room on every device it needs: admitted",
    req: { need: { CUDA0: 6 * GiB, Host: 1 * GiB }, claims: [claim("a", "running", { CUDA0: 8 * GiB })] },
    want: { kind: "admit" },
  },
  {
    name: "no projection, no cap: admitted (llama.cpp's --models-max 0)",
    req: { claims: [claim("a", "running", {}), claim("b", "running", {})] },
    want: { kind: "admit" },
  },
  {
    name: "count cap reached: one place to free (llama.cpp's rule when nothing is known of memory)",
    req: { modelsMax: 2, claims: [claim("a", "running", {}), claim("b", "loading", {})] },
    want: { kind: "evict", shortBy: {}, slots: 1 },
  },
  {
    name: "count cap reached by a stopping process: it gave its place up, admitted while it exits (a swap)",
    req: { modelsMax: 2, claims: [claim("a", "running", {}), claim("b", "stopping", {})] },
    want: { kind: "admit" },
  },
  {
    name: "a stopping process gives its place up, not its memory: short by claims, wait for its exit",
    req: {
      modelsMax: 1,
      need: { CUDA0: 8 * GiB },
      claims: [claim("a", "stopping", { CUDA0: 12 * GiB })],
    },
    want: { kind: "wait", cause: "exit", models: ["a"], devices: ["CUDA0"] },
  },
  {
    name: "two stopping processes under a cap of two: the fourth process is admitted",
    req: {
      modelsMax: 2,
      claims: [claim("a", "running", {}), claim("b", "stopping", {}), claim("c", "stopping", {})],
    },
    want: { kind: "admit" },
  },
  {
    name: "processes at twice the cap (one swap's engine evicted before its predecessor exited): wait",
    req: { modelsMax: 1, claims: [claim("b", "stopping", {}), claim("c", "stopping", {})] },
    want: { kind: "wait", cause: "exit", models: ["b", "c"], devices: [] },
  },
  {
    name: "the cap reached by running processes beside a stopping one: evict one more",
    req: { modelsMax: 1, claims: [claim("a", "running", {}), claim("b", "stopping", {})] },
    want: { kind: "evict", shortBy: {}, slots: 1 },
  },
  {
    name: "short on a device: evict what is missing",
    req: { need: { CUDA0: 6 * GiB }, claims: [claim("a", "running", { CUDA0: 12 * GiB })] },
    want: { kind: "evict", shortBy: { CUDA0: 2 * GiB }, slots: 0 },
  },
  {
    name: "short, but a stopping process frees enough: wait for its exit, evict nothing more",
    req: {
      need: { CUDA0: 6 * GiB },
      claims: [claim("a", "stopping", { CUDA0: 8 * GiB }), claim("b", "running", { CUDA0: 4 * GiB })],
    },
    want: { kind: "wait", cause: "exit", models: ["a"], devices: ["CUDA0"] },
  },
  {
    name: "a stopping process covers part of it: evict only the rest",
    req: {
      need: { CUDA0: 10 * GiB },
      claims: [claim("a", "stopping", { CUDA0: 3 * GiB }), claim("b", "running", { CUDA0: 9 * GiB })],
    },
    // missing 10 - (16 - 12) = 6, of which a's exit gives back 3
    want: { kind: "evict", shortBy: { CUDA0: 3 * GiB }, slots: 0 },
  },
  {
    name: "a stopping process on another device is not waited for",
    req: {
      need: { CUDA0: 6 * GiB },
      claims: [
        claim("a", "stopping", { CUDA0: 4 * GiB }),
        claim("b", "running", { CUDA0: 8 * GiB }),
        claim("h", "stopping", { Host: 4 * GiB }),
      ],
    },
    want: { kind: "wait", cause: "exit", models: ["a"], devices: ["CUDA0"] },
  },
  {
    name: "only the short device is named: the host has room",
    req: {
      budgets: { CUDA0: 16 * GiB, CUDA1: 16 * GiB, Host: 32 * GiB },
      need: { CUDA0: 2 * GiB, CUDA1: 8 * GiB, Host: 2 * GiB },
      claims: [claim("a", "running", { CUDA1: 12 * GiB, Host: 1 * GiB })],
    },
    want: { kind: "evict", shortBy: { CUDA1: 4 * GiB }, slots: 0 },
  },
  {
    name: "short on memory and on places at once: both are asked for",
    req: {
      modelsMax: 1,
      need: { CUDA0: 6 * GiB },
      claims: [claim("a", "running", { CUDA0: 12 * GiB })],
    },
    want: { kind: "evict", shortBy: { CUDA0: 2 * GiB }, slots: 1 },
  },
  {
    name: "fits, but another load on the same GPU has not finished: loads are serialised there",
    req: { need: { CUDA0: 2 * GiB, Host: 1 * GiB }, claims: [claim("l", "loading", { CUDA0: 4 * GiB })] },
    want: { kind: "wait", cause: "load", models: ["l"], devices: ["CUDA0"] },
  },
  {
    name: "a load in progress on the host only does not hold up another: claims suffice there",
    req: { need: { CUDA0: 2 * GiB, Host: 1 * GiB }, claims: [claim("l", "loading", { Host: 4 * GiB })] },
    want: { kind: "admit" },
  },
  {
    name: "a load in progress on another GPU does not hold it up",
    req: {
      budgets: { CUDA0: 16 * GiB, CUDA1: 16 * GiB },
      need: { CUDA0: 2 * GiB },
      claims: [claim("l", "loading", { CUDA1: 4 * GiB })],
    },
    want: { kind: "admit" },
  },
  {
    name: "claims say it fits, the driver does not show the memory back yet: wait for memory",
    req: {
      need: { CUDA0: 6 * GiB },
      claims: [claim("a", "running", { CUDA0: 4 * GiB })],
      liveFree: { CUDA0: 5 * GiB },
    },
    want: { kind: "wait", cause: "memory", models: [], devices: ["CUDA0"] },
  },
  {
    name: "after the bounded wait the caller stops passing live memory: claims decide",
    req: { need: { CUDA0: 6 * GiB }, claims: [claim("a", "running", { CUDA0: 4 * GiB })] },
    want: { kind: "admit" },
  },
  {
    name: "live memory of a device it does not need is no reason to wait",
    req: { need: { Host: 6 * GiB }, liveFree: { CUDA0: 0 } },
    want: { kind: "admit" },
  },
  {
    name: "bigger than its device's budget: never fits, whatever else runs",
    req: { need: { CUDA0: 20 * GiB }, claims: [claim("a", "running", { CUDA0: 4 * GiB })] },
    want: { kind: "never-fits", devices: ["CUDA0"] },
  },
  {
    name: "bigger than what pinned models leave: never fits",
    req: {
      need: { CUDA0: 10 * GiB },
      claims: [claim("p", "running", { CUDA0: 8 * GiB }, true), claim("a", "running", { CUDA0: 2 * GiB })],
    },
    want: { kind: "never-fits", devices: ["CUDA0"] },
  },
  {
    name: "a pinned model being unloaded gives its memory back: wait, not never-fits",
    req: { need: { CUDA0: 10 * GiB }, claims: [claim("p", "stopping", { CUDA0: 8 * GiB }, true)] },
    want: { kind: "wait", cause: "exit", models: ["p"], devices: ["CUDA0"] },
  },
  {
    name: "a device with no budget: never fits",
    req: { need: { CUDA3: 1 * GiB } },
    want: { kind: "never-fits", devices: ["CUDA3"] },
  },
  {
    name: "every place under --models-max held by pinned models: never fits",
    req: { modelsMax: 2, claims: [claim("p", "running", {}, true), claim("q", "loading", {}, true)] },
    want: { kind: "never-fits", devices: [] },
  },
  {
    name: "exactly the budget is enough",
    req: { need: { CUDA0: 8 * GiB }, claims: [claim("a", "running", { CUDA0: 8 * GiB })] },
    want: { kind: "admit" },
  },
];

for (const c of cases) {
  Deno.test(`admission: ${c.name}`, () => {
    assertEquals(shape(admit(request(c.req))), c.want);
  });
}

Deno.test("admission: never-fits names what the model needs and what there is, in readable bytes", () => {
  const over = admit(request({ need: { CUDA0: 20 * GiB + 512 * MiB } }));
  assertEquals(over.kind, "never-fits");
  assertEquals(
    (over as { message: string }).message,
    "model new does not fit: it needs 20.50 GiB on CUDA0, more than that device's budget of 16.00 GiB",
  );

  const pinned = admit(request({
    need: { CUDA0: 10 * GiB },
    claims: [
      claim("p", "running", { CUDA0: 4 * GiB }, true),
      claim("q", "running", { CUDA0: 3 * GiB }, true),
      claim("h", "running", { Host: 8 * GiB }, true),
    ],
  }));
  assertEquals(
    (pinned as { message: string }).message,
    "model new does not fit: it needs 10.00 GiB on CUDA0, but of that device's budget of 16.00 GiB the " +
      "pinned models p (4.00 GiB), q (3.00 GiB) hold 7.00 GiB, leaving 9.00 GiB",
  );

  const both = admit(request({
    budgets: { CUDA0: 16 * GiB },
    need: { CUDA0: 17 * GiB, Vulkan0: 1 * GiB },
  }));
  assertMatch(
    (both as { message: string }).message,
    /17\.00 GiB on CUDA0.*; it needs 1\.00 GiB on Vulkan0, a device with no memory budget/,
  );
  assertEquals(both.kind === "never-fits" && both.devices, ["CUDA0", "Vulkan0"]);
});

Deno.test("admission: the other decisions say what they wait for or what is missing", () => {
  const cases: [Partial<AdmissionRequest>, RegExp][] = [
    [
      { need: { CUDA0: 6 * GiB }, modelsMax: 1, claims: [claim("a", "running", { CUDA0: 12 * GiB })] },
      /^model new needs 2\.00 GiB on CUDA0 and one place under --models-max=1 freed by idle models$/,
    ],
    [
      { modelsMax: 1, claims: [claim("a", "stopping", {}), claim("b", "stopping", {})] },
      /^model new waits for a, b to exit$/,
    ],
    [
      { need: { CUDA0: 1 * GiB }, claims: [claim("l", "loading", { CUDA0: 1 * GiB })] },
      /^model new waits for l to finish loading on CUDA0$/,
    ],
    [
      { need: { CUDA0: 6 * GiB }, liveFree: { CUDA0: 5 * GiB } },
      /^model new waits for memory to come back: CUDA0 shows 5\.00 GiB free of 6\.00 GiB$/,
    ],
  ];
  for (const [req, pattern] of cases) {
    const d = admit(request(req));
    assert("message" in d, d.kind);
    assertMatch(d.message, pattern);
  }
});

Deno.test("admission: never-fits comes first, so a request that can never run is not queued", () => {
  // short on count and memory, a load in progress and memory not back: all beside the point
  const d = admit(request({
    modelsMax: 1,
    need: { CUDA0: 17 * GiB },
    claims: [claim("l", "loading", { CUDA0: 1 * GiB })],
    liveFree: { CUDA0: 0 },
  }));
  assertEquals(d.kind, "never-fits");
});

Deno.test("formatBytes reads like llama.cpp's logs", () => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [1023, "1023 B"],
    [1536, "1.5 KiB"],
    [35.76 * MiB, "35.8 MiB"],
    [1024 * MiB, "1.00 GiB"],
    [7.25 * GiB, "7.25 GiB"],
    [3 * 1024 * GiB, "3.00 TiB"],
    [-2 * GiB, "-2.00 GiB"],
  ];
  for (const [n, text] of cases) assertEquals(formatBytes(n), text, String(n));
});
