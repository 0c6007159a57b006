/**
 * Memory-aware scheduling as the HTTP layer shows it, in process on stub engines and a fake memory
 * port: each model's `pinned`, `priority`, `ttl`, `expires_at`, `status.memory` and
 * `status.unload_reason` in `/models`, the router's `/props` memory block, and pinned models that
 * cannot all be held refused at start-up and on reload (which keeps the table it had).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type InProcessGateway, startInProcess, withInProcess } from "../helpers/in_process.ts";
import { chatBody } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";
import type { GatewayMemory } from "../../router/memory/port.ts";
import { HOST } from "../../router/memory/projection.ts";
import type { ModelSpec } from "../../router/sources/types.ts";

const GiB = 2 ** 30;

/** Models need `gib[id]` GiB of host memory (1 GiB when not named), against a budget of `budgetGib`. */
function fakeMemory(gib: Record<string, number>, budgetGib: number): GatewayMemory {
  return {
    budgets: () => ({ [HOST]: budgetGib * GiB }),
    serialisedDevices: () => [],
    project: (spec: ModelSpec) =>
      Promise.resolve({ bytes: { [HOST]: (gib[spec.id] ?? 1) * GiB }, source: "gguf" }),
    observe: () => undefined,
    launchOptions: (options) => options,
    report: () =>
      Promise.resolve({
        [HOST]: { total: 16 * GiB, free: 12 * GiB, budget: budgetGib * GiB, reserve: (16 - budgetGib) * GiB },
      }),
  };
}

interface Entry {
  id: string;
  pinned: boolean;
  priority: number;
  ttl: number;
  expires_at: string | null;
  status: { value: string; args: string[]; preset?: string; unload_reason?: string; memory?: unknown };
}

async function entry(gw: InProcessGateway, id: string): Promise<Entry> {
  const list = await (await gw.send("/models")).json();
  return list.data.find((m: Entry) => m.id === id);
}

async function chat(gw: InProcessGateway, model: string): Promise<void> {
  const res = await gw.send("/v1/chat/completions", keyed({ method: "POST", json: chatBody(model) }));
  assertEquals(res.status, 200, `chat with ${model}`);
  await res.body?.cancel();
}

const preset = (dir: string, text: string) => Deno.writeTextFile(join(dir, "preset.ini"), text);

Deno.test("/models: pin, priority, ttl, expires_at, status.memory and unload_reason", async () => {
  await withInProcess(["a", "b"], async (dir) => {
    await preset(dir, `[b]\nmodel = ${join(dir, "b.gguf")}\npin = true\npriority = 5\nttl = 0\n`);
    return {
      args: ["--models-preset", join(dir, "preset.ini"), "--models-ttl", "60"],
      memory: fakeMemory({ a: 2, b: 3 }, 10),
    };
  }, async (gw) => {
    const before = await entry(gw, "a");
    assertEquals([before.pinned, before.priority, before.ttl, before.expires_at], [false, 0, 60, null]);
    assertEquals(before.status.memory, undefined, "nothing projected before a first request");
    const sent = Date.now();
    await chat(gw, "a");
    const loaded = await entry(gw, "a");
    assertEquals(loaded.status.memory, { projected: { [HOST]: 2 * GiB }, actual: null, source: "gguf" });
    const expires = Date.parse(loaded.expires_at ?? "");
    assert(expires >= sent + 60_000 && expires <= Date.now() + 60_000, String(loaded.expires_at));
    await chat(gw, "b");
    const pinned = await entry(gw, "b");
    assertEquals([pinned.pinned, pinned.priority, pinned.ttl, pinned.expires_at], [true, 5, 0, null]);
    assertMatch(pinned.status.preset ?? "", /pin = true\npriority = 5\nttl = 0\n/);
    const unloaded = gw.nextEvent((e) => e.model === "a" && e.data?.status === "unloaded");
    assertEquals(
      (await gw.send("/models/unload", keyed({ method: "POST", json: { model: "a" } }))).status,
      200,
    );
    assertEquals((await unloaded).data?.reason, "requested");
    const gone = await entry(gw, "a");
    assertEquals([gone.status.value, gone.status.unload_reason, gone.expires_at], [
      "unloaded",
      "requested",
      null,
    ]);
  });
});

Deno.test("/props: the memory block per device, with what live models claim", async () => {
  await withInProcess(["a", "b"], { memory: fakeMemory({ a: 2, b: 3 }, 10) }, async (gw) => {
    const empty = (await (await gw.send("/props")).json()).memory;
    assertEquals(empty, {
      [HOST]: { total: 16 * GiB, free: 12 * GiB, budget: 10 * GiB, reserve: 6 * GiB, claimed: 0 },
    });
    await chat(gw, "a");
    await chat(gw, "b");
    assertEquals((await (await gw.send("/props")).json()).memory[HOST].claimed, 5 * GiB);
  });
  await withInProcess(["a"], {}, async (gw) => {
    assertEquals((await (await gw.send("/props")).json()).memory, undefined, "no port, no block");
  });
});

Deno.test("pins beyond the budget: refused at start-up; a reload that brings them keeps the old table", async () => {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-pins-" });
  try {
    for (const name of ["a", "b"]) await Deno.writeFile(join(dir, `${name}.gguf`), new Uint8Array());
    const file = join(dir, "preset.ini");
    const both = `[*]\npin = true\n[a]\nmodel = ${join(dir, "a.gguf")}\n[b]\nmodel = ${
      join(dir, "b.gguf")
    }\n`;
    await Deno.writeTextFile(file, both);
    const setup = { args: ["--models-preset", file], memory: fakeMemory({ a: 6, b: 5 }, 10) };
    const refused = await startInProcess(dir, setup).then(() => "started", (e: Error) => e.message);
    assertMatch(
      refused,
      /pinned models need more than the memory budgets: on Host a \(6 GiB\), b \(5 GiB\) claim 11 GiB/,
    );

    await Deno.writeTextFile(file, `[a]\nmodel = ${join(dir, "a.gguf")}\npin = true\n`);
    const gw = await startInProcess(dir, setup);
    try {
      await chat(gw, "a");
      await Deno.writeTextFile(file, both);
      const reload = await gw.send("/models?reload=1");
      assertEquals(reload.status, 500);
      assertMatch(
        (await reload.json()).error.message,
        /reload failed, models unchanged: the pinned models need/,
      );
      const a = await entry(gw, "a");
      assertEquals([a.status.value, a.pinned, (await entry(gw, "b")).pinned], ["loaded", true, false]);
    } finally {
      await gw.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status.args: a running engine's own options, even when the next launch would differ", async () => {
  // a port that asks for the engine's buffer sizes until a load has shown them, as on hosts without GPUs
  const observed = new Set<string>();
  const memory: GatewayMemory = {
    ...fakeMemory({}, 10),
    observe: (spec) => (observed.add(spec.id), undefined),
    launchOptions: (options) => {
      const alias = String(options.get("--alias"));
      return observed.has(alias) ? options : new Map([...options, ["--log-verbosity", "4"]]);
    },
  };
  await withInProcess(["a"], { memory }, async (gw) => {
    const args = async () => (await entry(gw, "a")).status.args;
    const verbosity = (argv: string[]) => argv.includes("--log-verbosity");
    assert(verbosity(await args()), "before a load: the first launch's options");
    await chat(gw, "a");
    assert(observed.has("a"), "the load was observed");
    assert(verbosity(await args()), "the running engine was launched with the verbosity");
    const unloaded = gw.nextEvent((e) => e.model === "a" && e.data?.status === "unloaded");
    await gw.send("/models/unload", keyed({ method: "POST", json: { model: "a" } }));
    await unloaded;
    assert(!verbosity(await args()), "stopped: the next launch's options");
    await chat(gw, "a");
    assert(!verbosity(await args()), "the new engine's own");
  });
});
