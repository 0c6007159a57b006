/**
 * The KV cache store on a real folder, with a fake engine that writes and reads slot files as
 * llama-server does (into the folder it was given as `--slot-save-path`): atomic writes, the manifest,
 * the key, the LRU bound, leftovers, links, DELETE. The real engine is in tests/e2e/kv_swap_test.ts.
 */
import { join } from "node:path";
import type { SlotFacts } from "../../router/kvcache/policy.ts";
import { type SlotApi, SlotApiError, type SlotTransfer } from "../../router/kvcache/slots_client.ts";
import { KvCacheStore, type KvCacheStoreOptions } from "../../router/kvcache/store.ts";
import type { ModelSpec } from "../../router/sources/types.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { spec } from "../helpers/scheduler_setup.ts";

/** An engine per port: its slots, and the folder it saves into. */
class FakeEngines implements SlotApi {
  readonly engines = new Map<number, { folder: string; slots: SlotFacts[] }>();
  /** every file name the engines were asked to write or read, in order */
  readonly written: string[] = [];
  readonly restored: { port: number; slot: number; file: string }[] = [];
  readonly released: number[] = [];
  /** slots whose save the engine refuses */
  refuseSave = new Set<number>();
  listed = true;

  list(port: number): Promise<SlotFacts[] | undefined> {
    return Promise.resolve(this.listed ? this.engines.get(port)!.slots : undefined);
  }
  async save(port: number, slot: number, filename: string): Promise<SlotTransfer> {
    const engine = this.engines.get(port)!;
    if (this.refuseSave.has(slot)) throw new SlotApiError("Unable to save slot", 500);
    this.written.push(filename);
    const tokens = engine.slots.find((s) => s.id === slot)?.promptTokens ?? 0;
    const bytes = new TextEncoder().encode(`state of slot ${slot}: ${tokens} tokens`);
    await Deno.writeFile(join(engine.folder, filename), bytes);
    return { tokens, bytes: bytes.length, ms: 1 };
  }
  async restore(port: number, slot: number, filename: string): Promise<SlotTransfer> {
    const engine = this.engines.get(port)!;
    const text = await Deno.readTextFile(join(engine.folder, filename));
    const m = /^state of slot \d+: (\d+) tokens$/.exec(text);
    if (!m) throw new SlotApiError("Unable to restore slot: invalid slot save file", 400);
    this.restored.push({ port, slot, file: filename });
    return { tokens: Number(m[1]), bytes: text.length, ms: 1 };
  }
  release(port: number): void {
    this.released.push(port);
  }
}

interface Fixture {
  root: string;
  model: string;
  engines: FakeEngines;
  logs: string[];
  clock: { now: number };
  open(opts?: Partial<KvCacheStoreOptions>): Promise<KvCacheStore>;
  /** a launch of model `id` (`--model` the fixture's file) with these arguments after it */
  launch(argv?: string[]): EngineLaunch;
  /** an engine on `port` for `spec`, whose slots hold these tokens */
  engine(store: KvCacheStore, s: ModelSpec, port: number, tokens: number[]): void;
  files(id: string, store: KvCacheStore): Promise<string[]>;
}

async function withStore(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "switchyard-kv-unit-" });
  const model = join(root, "model.gguf");
  await Deno.writeTextFile(model, "weights");
  const engines = new FakeEngines();
  const logs: string[] = [];
  const clock = { now: 1_000 };
  const storeRoot = join(root, "store");
  const f: Fixture = {
    root: storeRoot,
    model,
    engines,
    logs,
    clock,
    open: (opts = {}) =>
      KvCacheStore.open({
        root: storeRoot,
        enabled: true,
        maxBytes: 1 << 20,
        keyContext: { engineBuild: "b1-test", env: {}, hfCacheDir: root },
        slots: engines,
        log: (line) => logs.push(line),
        now: () => clock.now,
        ...opts,
      }),
    launch: (argv = ["-c", "4096", "-np", "2"]) => ({
      bin: "llama-server",
      args: ["--model", model, ...argv],
      env: {},
    }),
    engine(store, s, port, tokens) {
      const folder = store.engineOptions(s).get("--slot-save-path") as string;
      engines.engines.set(port, { folder, slots: tokens.map((promptTokens, id) => ({ id, promptTokens })) });
    },
    files: async (id, store) => {
      const folder = store.engineOptions(spec(id)).get("--slot-save-path") as string;
      try {
        return (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name).sort();
      } catch {
        return [];
      }
    },
  };
  try {
    await fn(f);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const signal = new AbortController().signal;

Deno.test("a save writes each slot under a temporary name, renames it, then writes the manifest", async () => {
  await withStore(async (f) => {
    const store = await f.open();
    const a = spec("a");
    assert(store.enabledFor(a));
    await store.prepare(a);
    f.engine(store, a, 9001, [3007, 0]);
    await store.save({ modelId: "a", launch: f.launch(), port: 9001 }, signal);
    assertEquals(f.engines.written.length, 1, "only the slot holding a prompt");
    assert(/^[0-9a-f]{16}\.slot0\.tmp-[0-9a-z]+$/.test(f.engines.written[0]), f.engines.written[0]);
    const files = await f.files("a", store);
    assertEquals(files.length, 2, `${files}`);
    assert(/^[0-9a-f]{16}\.json$/.test(files[0]) && /^[0-9a-f]{16}\.slot0\.bin$/.test(files[1]), `${files}`);
    const bytes = "state of slot 0: 3007 tokens".length;
    assertEquals(store.summary("a"), { tokens: 3007, bytes, slots: 1, savedAt: 1_000 });
    assertEquals(store.summary("b"), undefined);
    const stats = store.stats();
    assertEquals([stats.saves, stats.savedBytes, stats.storedBytes, stats.saveFailures], [
      1,
      bytes,
      bytes,
      0,
    ]);
    assertEquals(f.engines.released, [9001], "its own sockets to the engine are closed after the save");
    assert(f.logs.some((l) => /^kv cache: saved a: 1 slot, 3007 tokens/.test(l)), f.logs.join("\n"));
  });
});

Deno.test("a restore puts back what was saved under the launch's key; another key's files are dropped", async () => {
  await withStore(async (f) => {
    const store = await f.open();
    const a = spec("a");
    await store.prepare(a);
    f.engine(store, a, 9001, [100, 200]);
    await store.save({ modelId: "a", launch: f.launch(), port: 9001 }, signal);
    f.engine(store, a, 9002, [0, 0]);
    f.clock.now = 2_000;
    await store.restore({ modelId: "a", launch: f.launch(), port: 9002 }, signal);
    assertEquals(f.engines.restored.map((r) => [r.port, r.slot]), [[9002, 0], [9002, 1]]);
    const stats = store.stats();
    assertEquals([stats.restores, stats.restoredTokens, stats.restoreFailures], [1, 300, 0]);
    // restored slots are listed without tokens until they serve again, yet their cache holds them
    await store.save({ modelId: "a", launch: f.launch(), port: 9002 }, signal);
    assertEquals(store.summary("a")?.tokens, 300, "saved again, though the engine listed no tokens");
    // another context is another cache shape: nothing to restore, and the old files are gone
    f.engine(store, a, 9003, [0, 0]);
    await store.restore({ modelId: "a", launch: f.launch(["-c", "8192", "-np", "2"]), port: 9003 }, signal);
    assertEquals(f.engines.restored.filter((r) => r.port === 9003), []);
    assertEquals(await f.files("a", store), []);
    assertEquals(store.summary("a"), undefined);
  });
});

Deno.test("a damaged slot file: the restore fails, is logged and counted, and the key's files are dropped", async () => {
  await withStore(async (f) => {
    const store = await f.open();
    const a = spec("a");
    await store.prepare(a);
    f.engine(store, a, 9001, [50, 0]);
    await store.save({ modelId: "a", launch: f.launch(), port: 9001 }, signal);
    const slotFile = (await f.files("a", store)).find((n) => n.endsWith(".bin"))!;
    const folder = store.engineOptions(a).get("--slot-save-path") as string;
    await Deno.writeTextFile(join(folder, slotFile), "garbage");
    f.engine(store, a, 9002, [0, 0]);
    await store.restore({ modelId: "a", launch: f.launch(), port: 9002 }, signal);
    assertEquals(store.stats().restoreFailures, 1);
    assert(
      f.logs.some((l) => /restoring a failed, it serves from cold: .*invalid slot save file/.test(l)),
      f.logs.join("\n"),
    );
    assertEquals(await f.files("a", store), []);
  });
});

Deno.test("a slot file that is a link is never handed to the engine", async () => {
  await withStore(async (f) => {
    const store = await f.open();
    const a = spec("a");
    await store.prepare(a);
    f.engine(store, a, 9001, [50]);
    await store.save({ modelId: "a", launch: f.launch(["-c", "4096", "-np", "1"]), port: 9001 }, signal);
    const folder = store.engineOptions(a).get("--slot-save-path") as string;
    const slotFile = (await f.files("a", store)).find((n) => n.endsWith(".bin"))!;
    const outside = join(f.root, "..", "outside.bin");
    await Deno.writeTextFile(outside, "state of slot 0: 50 tokens");
    await Deno.remove(join(folder, slotFile));
    await Deno.symlink(outside, join(folder, slotFile));
    f.engine(store, a, 9002, [0]);
    await store.restore({ modelId: "a", launch: f.launch(["-c", "4096", "-np", "1"]), port: 9002 }, signal);
    assertEquals(f.engines.restored, []);
    assertEquals(store.stats().restoreFailures, 1);
  });
});

Deno.test("the bound deletes the least recently used cache; reopening reads what is left and clears leftovers", async () => {
  await withStore(async (f) => {
    const one = "state of slot 0: 10 tokens".length;
    let store = await f.open({ maxBytes: one * 2 });
    for (const [i, id] of ["a", "b", "c"].entries()) {
      await store.prepare(spec(id));
      f.engine(store, spec(id), 9001 + i, [10]);
      // a restore of a, before c is saved, makes a more recent than b
      f.clock.now = 1_000 + 10 * i - 5;
      if (id === "c") await store.restore({ modelId: "a", launch: f.launch(), port: 9001 }, signal);
      f.clock.now = 1_000 + 10 * i;
      await store.save({ modelId: id, launch: f.launch(), port: 9001 + i }, signal);
    }
    assertEquals(["a", "b", "c"].map((id) => store.summary(id) !== undefined), [true, false, true]);
    assertEquals(await f.files("b", store), []);
    assertEquals(store.stats().evictions, 1);
    assert(
      f.logs.some((l) => /deleted the saved cache of b .*least recently used/.test(l)),
      f.logs.join("\n"),
    );

    const folder = store.engineOptions(spec("a")).get("--slot-save-path") as string;
    const key = (await f.files("a", store))[0].slice(0, 16);
    await Deno.writeTextFile(join(folder, `${key}.slot1.tmp-left0ver`), "half a save");
    store = await f.open({ maxBytes: one * 2 });
    assertEquals(store.summary("a")?.tokens, 10, "what was saved is found again");
    assertEquals(store.summary("c")?.tokens, 10);
    assertEquals((await f.files("a", store)).filter((n) => n.includes(".tmp-")), [], "the leftover is gone");
    // a smaller bound applies at once
    store = await f.open({ maxBytes: one });
    assertEquals(["a", "c"].map((id) => store.summary(id) !== undefined), [false, true]);
  });
});

Deno.test("without GET /slots every slot is asked; a slot the engine refuses leaves the others saved", async () => {
  await withStore(async (f) => {
    const store = await f.open();
    const a = spec("a");
    await store.prepare(a);
    f.engine(store, a, 9001, [0, 40, 60]);
    f.engines.listed = false;
    f.engines.refuseSave.add(2);
    await store.save({ modelId: "a", launch: f.launch(["-c", "4096", "-np", "3"]), port: 9001 }, signal);
    assertEquals(store.summary("a"), {
      tokens: 40,
      bytes: "state of slot 1: 40 tokens".length,
      slots: 1,
      savedAt: 1_000,
    });
    assert(f.logs.some((l) => /saving a slot 2 failed/.test(l)), f.logs.join("\n"));
    const files = await f.files("a", store);
    assertEquals(files.filter((n) => n.includes(".tmp-") || n.includes(".slot0.")), [], `${files}`);
  });
});

Deno.test("a model's caches are discarded with it; a preset opts a model out or in", async () => {
  await withStore(async (f) => {
    const store = await f.open({ enabled: false });
    assert(!store.enabledFor(spec("a")), "off without --swap-kv-cache");
    assert(store.enabledFor(spec("a", { swapKvCache: true })), "a preset's swap-kv-cache = true turns it on");
    const on = await f.open();
    assert(
      !on.enabledFor(spec("a", { swapKvCache: false })),
      "a preset's swap-kv-cache = false turns it off",
    );
    await on.prepare(spec("a"));
    f.engine(on, spec("a"), 9001, [10]);
    await on.save({ modelId: "a", launch: f.launch(), port: 9001 }, signal);
    assertEquals((await f.files("a", on)).length, 2);
    await on.discard("a");
    assertEquals(await f.files("a", on), []);
    assertEquals(on.summary("a"), undefined);
    assertEquals(on.stats().storedBytes, 0);
  });
});
