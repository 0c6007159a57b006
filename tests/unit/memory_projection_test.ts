/**
 * The projection type every memory source shares, its sums and overheads, and the cache key
 * (router/memory/projection.ts): file identity, memory-relevant arguments and engine build.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { memoryArgs } from "../../router/memory/args.ts";
import {
  claimBytes,
  defaultOverheads,
  deviceBytes,
  fileIdentity,
  HOST,
  type MemoryProjection,
  memoryStatus,
  ProjectionCache,
  projectionKey,
  sumProjections,
  totalsByDevice,
} from "../../router/memory/projection.ts";
import { MiB } from "../../router/memory/size.ts";
import { canonicalFlag } from "../../router/sources/spec.ts";

const args = (...pairs: Array<[string, string | boolean]>) =>
  memoryArgs(new Map(pairs.map(([flag, value]) => [canonicalFlag(flag), value])));
const fit: MemoryProjection = {
  perDevice: { CUDA0: deviceBytes(100, 20, 30), [HOST]: deviceBytes(5, 0, 1) },
  source: "fit-params",
};
const observed: MemoryProjection = {
  perDevice: { CUDA0: deviceBytes(101, 20, 40), [HOST]: deviceBytes(5, 0, 2) },
  source: "observed",
};

Deno.test("deviceBytes / sumProjections / totalsByDevice: per-device sums", () => {
  assertEquals(deviceBytes(1, 2, 3), { model: 1, context: 2, compute: 3, total: 6 });
  const draft: MemoryProjection = { perDevice: { CUDA1: deviceBytes(7, 1, 1) }, source: "gguf" };
  const sum = sumProjections("fit-params", fit, draft);
  assertEquals(sum.perDevice, {
    CUDA0: deviceBytes(100, 20, 30),
    [HOST]: deviceBytes(5, 0, 1),
    CUDA1: deviceBytes(7, 1, 1),
  });
  assertEquals(totalsByDevice(sum), { CUDA0: 150, [HOST]: 6, CUDA1: 9 });
});

Deno.test("memoryStatus: /models shows the projection, the actual figures once a load showed them", () => {
  assertEquals(memoryStatus(fit), {
    projected: { CUDA0: 150, [HOST]: 6 },
    actual: null,
    source: "fit-params",
  });
  assertEquals(memoryStatus(fit, observed), {
    projected: { CUDA0: 150, [HOST]: 6 },
    actual: { CUDA0: 161, [HOST]: 7 },
    source: "observed",
  });
});

Deno.test("claimBytes: the GPU runtime's overhead per device used, the prompt cache on the host", () => {
  const o = defaultOverheads(args(["-cram", "2048"]));
  assertEquals(claimBytes(fit, o), { CUDA0: 150 + 512 * MiB, [HOST]: 6 + 2048 * MiB });
  const vulkan: MemoryProjection = {
    perDevice: { Vulkan0: deviceBytes(1, 0, 0), CUDA1: deviceBytes(0, 0, 0) },
    source: "gguf",
  };
  // an unused device claims nothing; the host always claims its prompt cache (8 GiB by default)
  assertEquals(claimBytes(vulkan, defaultOverheads(args())), { Vulkan0: 1 + 256 * MiB, [HOST]: 8192 * MiB });
  assertEquals(claimBytes(fit, defaultOverheads(args(["-cram", "0"])))[HOST], 6);
  assertEquals(claimBytes(fit, defaultOverheads(args(["-cram", "-1"])))[HOST], 6 + 8192 * MiB);
});

Deno.test("projectionKey: changes with the file, the memory arguments or the engine build, not their spelling", () => {
  const file = { path: "/m/a.gguf", size: 1000, mtimeMs: 5 };
  const base = { files: [file], args: args(["-c", "4096"]), engineBuild: "b1-80fb11a" };
  const key = projectionKey(base);
  assertEquals(
    projectionKey({ ...base, args: args(["--ctx-size", "4096"], ["-np", "4"], ["-kvu", true]) }),
    key,
  );
  for (
    const changed of [
      { ...base, files: [{ ...file, size: 1001 }] },
      { ...base, files: [{ ...file, mtimeMs: 6 }] },
      { ...base, files: [file, { path: "/m/mmproj.gguf", size: 1, mtimeMs: 1 }] },
      { ...base, args: args(["-c", "8192"]) },
      { ...base, args: args(["-c", "4096"], ["-ctk", "q8_0"]) },
      { ...base, engineBuild: "b2-0000000" },
      { ...base, visibleDevices: "0" },
    ]
  ) {
    assert(projectionKey(changed) !== key, JSON.stringify(changed));
  }
});

Deno.test("fileIdentity: the real path, size and mtime", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.writeTextFile(`${dir}/a.gguf`, "12345");
    await Deno.symlink(`${dir}/a.gguf`, `${dir}/link.gguf`);
    const id = await fileIdentity(`${dir}/link.gguf`);
    assertEquals([id.path, id.size], [`${dir}/a.gguf`, 5]);
    assertEquals(await fileIdentity(`${dir}//a.gguf`), id);
    await Deno.writeTextFile(`${dir}/a.gguf`, "123456");
    assertEquals((await fileIdentity(`${dir}/a.gguf`)).size, 6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ProjectionCache: observed figures take over for claims; the projection stays for /models", () => {
  const cache = new ProjectionCache();
  assertEquals(cache.best("k"), undefined);
  cache.setProjected("k", fit);
  assertEquals(cache.best("k"), fit);
  cache.setObserved("k", { ...observed, source: "gguf" });
  assertEquals(cache.best("k"), observed);
  // a later projection (say, after a restart of the gateway's fitter) does not hide what was observed
  cache.setProjected("k", { ...fit, source: "gguf" });
  assertEquals(cache.get("k"), { projected: { ...fit, source: "gguf" }, observed });
  cache.delete("k");
  assertEquals(cache.get("k"), undefined);
});
