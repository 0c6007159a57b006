/**
 * Devices and their memory (router/memory/devices.ts): the engine's `--list-devices` lines, host RAM
 * from /proc/meminfo and the cgroup limits above us, on captured output and on a fake cgroup tree.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { engineBinPath } from "../helpers/llama_server.ts";
import { GPU_LIST_DEVICES, REAL_LIST_DEVICES_CPU } from "../fixtures/memory_outputs.ts";
import {
  cgroupAncestry,
  detectDevices,
  hostDevice,
  listGpus,
  parseCgroupNumber,
  parseInactiveFile,
  parseListDevices,
  parseMeminfo,
  parseProcCgroup,
  readCgroupLevels,
} from "../../router/memory/devices.ts";
import { HOST } from "../../router/memory/projection.ts";
import { GiB, KiB, MiB } from "../../router/memory/size.ts";

Deno.test("parseListDevices: a CPU-only build lists none", () => {
  assertEquals(parseListDevices(REAL_LIST_DEVICES_CPU), []);
});

Deno.test("parseListDevices: GPU lines in the source's format, whatever the description holds", () => {
  assertEquals(parseListDevices(GPU_LIST_DEVICES), [
    { name: "CUDA0", description: "NVIDIA H200", total: 143771 * MiB, free: 143000 * MiB, kind: "gpu" },
    {
      name: "CUDA1",
      description: "NVIDIA GeForce RTX 4060 Ti",
      total: 16379 * MiB,
      free: 14900 * MiB,
      kind: "gpu",
    },
    {
      name: "Vulkan0",
      description: "AMD Radeon RX 7900 XTX (RADV NAVI31)",
      total: 24560 * MiB,
      free: 24000 * MiB,
      kind: "gpu",
    },
    {
      name: "RPC0[192.168.1.7:50052]",
      description: "RPC0[192.168.1.7:50052]",
      total: 8192 * MiB,
      free: 8000 * MiB,
      kind: "gpu",
    },
  ]);
});

const MEMINFO = "MemTotal:       24683652 kB\nMemFree:        22269060 kB\nMemAvailable:   23921608 kB\n";

Deno.test("parseMeminfo: kB are KiB; MemFree stands in on kernels without MemAvailable", () => {
  assertEquals(parseMeminfo(MEMINFO), { total: 24683652 * KiB, available: 23921608 * KiB });
  assertEquals(parseMeminfo("MemTotal: 100 kB\nMemFree: 40 kB\n"), { total: 100 * KiB, available: 40 * KiB });
  assertEquals(parseMeminfo("nothing here"), undefined);
});

Deno.test("cgroup files: max and v1's huge no-limit number, memory.stat, /proc/self/cgroup", () => {
  assertEquals(parseCgroupNumber("max\n"), undefined);
  assertEquals(parseCgroupNumber("8589934592\n"), 8 * GiB);
  assertEquals(parseCgroupNumber(undefined), undefined);
  assertEquals(parseCgroupNumber("9223372036854771712"), 9223372036854771712);
  assertEquals(parseInactiveFile("anon 5\ninactive_file 1024\nactive_file 9\n"), 1024);
  assertEquals(parseInactiveFile("cache 9\ninactive_file 7\ntotal_inactive_file 2048\n"), 2048);
  assertEquals(parseProcCgroup("0::/user.slice/app\n"), { v2: "/user.slice/app" });
  assertEquals(
    parseProcCgroup("9:name=systemd:/\n4:memory:/process_api/dbae\n2:cpu,cpuacct:/\n0::/\n"),
    { v1: "/process_api/dbae", v2: "/" },
  );
  assertEquals(cgroupAncestry("/a/b"), ["/a/b", "/a", ""]);
  assertEquals(cgroupAncestry("/"), [""]);
});

Deno.test("hostDevice: the smallest limit bounds total; free is bounded by each limit's headroom", () => {
  const meminfo = { total: 64 * GiB, available: 50 * GiB };
  assertEquals(hostDevice(meminfo, []), {
    name: HOST,
    description: "host memory",
    total: 64 * GiB,
    free: 50 * GiB,
    kind: "host",
  });
  // the container's 16 GiB limit with 6 GiB charged, 2 GiB of it reclaimable page cache
  const limited = hostDevice(meminfo, [
    { limit: 16 * GiB, usage: 6 * GiB, inactiveFile: 2 * GiB },
    { limit: 9223372036854771712, usage: 40 * GiB },
    {},
  ]);
  assertEquals([limited.total, limited.free], [16 * GiB, 12 * GiB]);
  // a parent with a tighter limit wins, and free never exceeds total
  const parent = hostDevice(meminfo, [{ limit: 16 * GiB, usage: 0 }, { limit: 10 * GiB, usage: 0 }]);
  assertEquals([parent.total, parent.free], [10 * GiB, 10 * GiB]);
});

Deno.test("readCgroupLevels: walks our cgroup and its ancestors (v2 and v1 trees)", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/kube/pod`, { recursive: true });
    await Deno.writeTextFile(`${root}/kube/pod/memory.max`, "max\n");
    await Deno.writeTextFile(`${root}/kube/memory.max`, "4294967296\n");
    await Deno.writeTextFile(`${root}/kube/memory.current`, "1073741824\n");
    await Deno.writeTextFile(`${root}/kube/memory.stat`, "inactive_file 536870912\n");
    await Deno.mkdir(`${root}/memory/docker/x`, { recursive: true });
    await Deno.writeTextFile(`${root}/memory/docker/x/memory.limit_in_bytes`, "2147483648\n");
    await Deno.writeTextFile(`${root}/memory/docker/x/memory.usage_in_bytes`, "1073741824\n");
    await Deno.writeTextFile(`${root}/proc_cgroup`, "0::/kube/pod\n5:memory:/docker/x\n");
    const levels = await readCgroupLevels(root, `${root}/proc_cgroup`);
    assertEquals(levels, [
      { limit: undefined, usage: undefined, inactiveFile: undefined },
      { limit: 4 * GiB, usage: GiB, inactiveFile: GiB / 2 },
      { limit: undefined, usage: undefined, inactiveFile: undefined },
      { limit: 2 * GiB, usage: GiB, inactiveFile: undefined },
      { limit: undefined, usage: undefined, inactiveFile: undefined },
      { limit: undefined, usage: undefined, inactiveFile: undefined },
    ]);
    const host = hostDevice({ total: 64 * GiB, available: 60 * GiB }, levels);
    assertEquals([host.total, host.free], [2 * GiB, GiB]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("listGpus: a binary that cannot run gives a reason, not a throw", async () => {
  const reason = await listGpus("/nonexistent/llama-server");
  assert(typeof reason === "string" && reason.includes("/nonexistent/llama-server"), String(reason));
});

const engine = engineBinPath();
const haveEngine = await Deno.stat(engine).then(() => true, () => false);
if (!haveEngine) {
  console.warn(`memory_devices_test: no llama-server at ${engine}; the real --list-devices test is skipped`);
}

Deno.test({
  name: "detectDevices: the real engine's GPUs (none on a CPU build) and this machine's host RAM",
  ignore: !haveEngine,
  fn: async () => {
    const { devices, warnings } = await detectDevices(engine);
    assertEquals(warnings, []);
    const host = devices.find((d) => d.name === HOST);
    assert(host && host.total > 0 && host.free > 0 && host.free <= host.total, Deno.inspect(host));
    for (const d of devices.filter((d) => d.kind === "gpu")) assert(d.total >= d.free, Deno.inspect(d));
  },
});
