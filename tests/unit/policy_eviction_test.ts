/**
 * Victim choice: who is a candidate, in what order, and how few are stopped. Every case is a table
 * of live models and what the admission policy said was missing.
 */
import { assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  chooseVictims,
  evictionCandidates,
  type KeptBecause,
  keptBecause,
  type ModelFacts,
} from "../../router/scheduler/policies/eviction.ts";

const GiB = 2 ** 30;

/** An idle loaded model: the only kind that may be evicted; tests change what they need. */
function idle(
  modelId: string,
  lastUsed: number,
  claim: ModelFacts["claim"],
  over: Partial<ModelFacts> = {},
): ModelFacts {
  return {
    modelId,
    phase: "loaded",
    pinned: false,
    priority: 0,
    lastUsed,
    inflight: 0,
    waiting: 0,
    awaited: false,
    claim,
    ...over,
  };
}

const victims = (models: ModelFacts[], shortBy: ModelFacts["claim"], slots = 0) => {
  const plan = chooseVictims(models, { shortBy, slots });
  return plan.kind === "evict" ? plan.victims : plan.outcome;
};

Deno.test("eviction: only idle models are candidates", () => {
  const cases: [Partial<ModelFacts>, KeptBecause | undefined][] = [
    [{}, undefined],
    [{ phase: "sleeping" }, undefined],
    [{ pinned: true }, "pinned"],
    [{ inflight: 1 }, "busy"],
    [{ waiting: 1 }, "busy"],
    [{ awaited: true }, "awaited"],
    [{ phase: "loading" }, "loading"],
    [{ phase: "stopping" }, "stopping"],
    // pinned wins over every other reason: it is the one that never changes
    [{ pinned: true, inflight: 3, phase: "loading" }, "pinned"],
  ];
  for (const [over, want] of cases) {
    assertEquals(keptBecause(idle("m", 0, {}, over)), want, JSON.stringify(over));
  }
});

Deno.test("eviction: order is priority, then least recently used, then the larger claim on the short devices", () => {
  const models = [
    idle("recent-low", 50, { CUDA0: 1 * GiB }, { priority: -1 }),
    idle("old-high", 1, { CUDA0: 1 * GiB }, { priority: 5 }),
    idle("mid-small", 10, { CUDA0: 1 * GiB, Host: 9 * GiB }),
    idle("mid-large", 10, { CUDA0: 4 * GiB }),
    idle("oldest", 2, { CUDA0: 1 * GiB }),
    idle("busy", 0, { CUDA0: 8 * GiB }, { inflight: 1 }),
  ];
  const order = (devices: string[]) => evictionCandidates(models, devices).map((m) => m.modelId);
  assertEquals(order(["CUDA0"]), ["recent-low", "oldest", "mid-large", "mid-small", "old-high"]);
  // nothing short (the count cap alone): the size tie-break counts every device
  assertEquals(order([]), ["recent-low", "oldest", "mid-small", "mid-large", "old-high"]);
});

const cases: {
  name: string;
  models: ModelFacts[];
  shortBy: ModelFacts["claim"];
  slots?: number;
  want: string[] | "wait" | "never";
}[] = [
  {
    name: "nothing missing: nobody is evicted",
    models: [idle("a", 1, { CUDA0: 4 * GiB })],
    shortBy: {},
    want: [],
  },
  {
    name: "the least recently used idle model that frees enough",
    models: [
      idle("a", 2, { CUDA0: 4 * GiB }),
      idle("b", 1, { CUDA0: 4 * GiB }),
      idle("c", 3, { CUDA0: 4 * GiB }),
    ],
    shortBy: { CUDA0: 3 * GiB },
    want: ["b"],
  },
  {
    name: "the shortest prefix of the order: two old models before one more recent one",
    models: [
      idle("a", 1, { CUDA0: 4 * GiB }),
      idle("b", 2, { CUDA0: 4 * GiB }),
      idle("c", 3, { CUDA0: 8 * GiB }),
    ],
    shortBy: { CUDA0: 8 * GiB },
    want: ["a", "b"],
  },
  {
    name: "fewest: an old model the big one makes unnecessary is spared",
    models: [idle("old-small", 1, { CUDA0: 1 * GiB }), idle("big", 2, { CUDA0: 10 * GiB })],
    shortBy: { CUDA0: 8 * GiB },
    want: ["big"],
  },
  {
    name: "fewest: within the prefix, the most valued member that is not needed is spared",
    models: [
      idle("a", 1, { CUDA0: 6 * GiB }),
      idle("b", 2, { CUDA0: 2 * GiB }),
      idle("c", 3, { CUDA0: 6 * GiB }),
    ],
    shortBy: { CUDA0: 12 * GiB },
    want: ["a", "c"],
  },
  {
    name: "only the devices the newcomer needs count: a host-only model frees nothing on the GPU",
    models: [idle("host-only", 1, { Host: 16 * GiB }), idle("gpu", 2, { CUDA0: 4 * GiB, Host: 1 * GiB })],
    shortBy: { CUDA0: 4 * GiB },
    want: ["gpu"],
  },
  {
    name: "a model on another GPU is not evicted for this one",
    models: [idle("other-gpu", 1, { CUDA1: 8 * GiB }), idle("same-gpu", 2, { CUDA0: 8 * GiB })],
    shortBy: { CUDA0: 2 * GiB },
    want: ["same-gpu"],
  },
  {
    name: "short on two devices: enough on each",
    models: [idle("a", 1, { CUDA0: 4 * GiB }), idle("b", 2, { CUDA0: 4 * GiB, CUDA1: 4 * GiB })],
    shortBy: { CUDA0: 4 * GiB, CUDA1: 4 * GiB },
    want: ["b"],
  },
  {
    name: "lower priority goes first even when more recently used",
    models: [idle("keep", 1, { CUDA0: 8 * GiB }, { priority: 10 }), idle("drop", 9, { CUDA0: 8 * GiB })],
    shortBy: { CUDA0: 8 * GiB },
    want: ["drop"],
  },
  {
    name: "a higher-priority model goes when the lower ones cannot free enough",
    models: [
      idle("low", 1, { CUDA0: 2 * GiB }, { priority: -1 }),
      idle("high", 2, { CUDA0: 8 * GiB }, { priority: 3 }),
    ],
    shortBy: { CUDA0: 8 * GiB },
    want: ["high"],
  },
  {
    name: "equal priority and age: the larger claim on the short device first",
    models: [idle("small", 1, { CUDA0: 2 * GiB }), idle("large", 1, { CUDA0: 6 * GiB })],
    shortBy: { CUDA0: 2 * GiB },
    want: ["large"],
  },
  {
    name: "count cap alone: one victim, least recently used",
    models: [idle("a", 3, {}), idle("b", 1, {}), idle("c", 2, {})],
    shortBy: {},
    slots: 1,
    want: ["b"],
  },
  {
    name: "count cap alone: lowest priority before least recently used",
    models: [idle("a", 3, {}, { priority: -2 }), idle("b", 1, {})],
    shortBy: {},
    slots: 1,
    want: ["a"],
  },
  {
    name: "count cap alone: busy, awaited, loading and pinned models are never the victim",
    models: [
      idle("busy", 0, {}, { inflight: 2 }),
      idle("awaited", 0, {}, { awaited: true }),
      idle("loading", 0, {}, { phase: "loading" }),
      idle("pinned", 0, {}, { pinned: true }),
      idle("idle", 9, {}),
    ],
    shortBy: {},
    slots: 1,
    want: ["idle"],
  },
  {
    name: "places and memory together: a model that frees only a place still counts for the place",
    models: [
      idle("a", 1, { Host: 1 * GiB }),
      idle("b", 2, { CUDA0: 4 * GiB }),
      idle("c", 3, { CUDA0: 4 * GiB }),
    ],
    shortBy: { CUDA0: 4 * GiB },
    slots: 2,
    want: ["a", "b"],
  },
  {
    name: "idle models cannot free enough, a busy one could later: the request waits",
    models: [idle("idle", 1, { CUDA0: 2 * GiB }), idle("busy", 2, { CUDA0: 8 * GiB }, { inflight: 1 })],
    shortBy: { CUDA0: 6 * GiB },
    want: "wait",
  },
  {
    name: "a model still loading could free it later: the request waits",
    models: [idle("loading", 2, { CUDA0: 8 * GiB }, { phase: "loading" })],
    shortBy: { CUDA0: 6 * GiB },
    want: "wait",
  },
  {
    name: "only pinned models hold the rest: never",
    models: [idle("idle", 1, { CUDA0: 2 * GiB }), idle("pinned", 2, { CUDA0: 8 * GiB }, { pinned: true })],
    shortBy: { CUDA0: 6 * GiB },
    want: "never",
  },
  {
    name: "no place will come free: every other one is pinned",
    models: [idle("p", 1, {}, { pinned: true }), idle("q", 1, {}, { pinned: true })],
    shortBy: {},
    slots: 1,
    want: "never",
  },
];

for (const c of cases) {
  Deno.test(`eviction: ${c.name}`, () => {
    assertEquals(victims(c.models, c.shortBy, c.slots), c.want);
  });
}

Deno.test("eviction: a plan says what it frees; a refusal says who holds the memory and why", () => {
  const plan = chooseVictims(
    [idle("a", 1, { CUDA0: 4 * GiB, Host: 1 * GiB }), idle("b", 2, { CUDA0: 4 * GiB })],
    { shortBy: { CUDA0: 6 * GiB }, slots: 0 },
  );
  assertEquals(plan, { kind: "evict", victims: ["a", "b"], frees: { CUDA0: 8 * GiB, Host: 1 * GiB } });

  const refused = chooseVictims(
    [
      idle("idle", 1, { CUDA0: 2 * GiB }),
      idle("busy", 2, { CUDA0: 4 * GiB }, { inflight: 1 }),
      idle("pinned", 3, { CUDA0: 8 * GiB }, { pinned: true }),
      idle("leaving", 4, { CUDA0: 8 * GiB }, { phase: "stopping" }),
    ],
    { shortBy: { CUDA0: 10 * GiB }, slots: 0 },
  );
  assertEquals(refused.kind, "insufficient");
  if (refused.kind !== "insufficient") return;
  assertEquals(refused.outcome, "never");
  assertEquals(refused.freeable, { CUDA0: 2 * GiB });
  assertEquals(refused.blockers, [{ modelId: "busy", because: "busy" }, {
    modelId: "pinned",
    because: "pinned",
  }]);
  assertMatch(
    refused.message,
    /^idle models cannot free 10\.00 GiB on CUDA0; held by busy \(busy\), pinned \(pinned\); only pinned/,
  );
});

Deno.test("eviction: the choice does not depend on the order the table lists models in", () => {
  const models = [
    idle("a", 1, { CUDA0: 6 * GiB }),
    idle("b", 2, { CUDA0: 2 * GiB }),
    idle("c", 3, { CUDA0: 6 * GiB }),
    idle("d", 3, { CUDA0: 6 * GiB }, { priority: 1 }),
  ];
  const want = victims(models, { CUDA0: 12 * GiB });
  assertEquals(victims([...models].reverse(), { CUDA0: 12 * GiB }), want);
  assertEquals(victims([models[2], models[0], models[3], models[1]], { CUDA0: 12 * GiB }), want);
});
