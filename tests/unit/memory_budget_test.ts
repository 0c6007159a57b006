/** `--models-memory SPEC`: syntax, device names and the budgets it gives (router/memory/budget.ts). */
import { assertEquals } from "../helpers/assert.ts";
import { assertThrows } from "./sources_assert.ts";
import {
  autoReserve,
  budgetBytes,
  budgets,
  MemorySpecError,
  parseMemorySpec,
} from "../../router/memory/budget.ts";
import type { Device } from "../../router/memory/devices.ts";
import { HOST } from "../../router/memory/projection.ts";
import { GiB, MiB } from "../../router/memory/size.ts";

const gpu = (name: string, total: number): Device => ({
  name,
  description: name,
  total,
  free: total,
  kind: "gpu",
});
const DEVICES: Device[] = [
  gpu("CUDA0", 24 * GiB),
  gpu("CUDA1", 8 * GiB),
  { name: HOST, description: "host memory", total: 64 * GiB, free: 60 * GiB, kind: "host" },
];

Deno.test("parseMemorySpec: auto, one size, or DEVICE=SIZE pairs", () => {
  assertEquals(parseMemorySpec("auto"), { kind: "auto" });
  assertEquals(parseMemorySpec("AUTO"), { kind: "auto" });
  assertEquals(parseMemorySpec(""), { kind: "auto" });
  assertEquals(parseMemorySpec("20G"), { kind: "all", bytes: 20 * GiB });
  assertEquals(parseMemorySpec("host=12G, CUDA0=22G"), {
    kind: "devices",
    bytes: { host: 12 * GiB, CUDA0: 22 * GiB },
  });
});

Deno.test("parseMemorySpec: errors name the bad part", () => {
  assertThrows(() => parseMemorySpec("host=12X"), MemorySpecError, "'host=12X'", "12X");
  assertThrows(() => parseMemorySpec("host=12G,=5G"), MemorySpecError, "'=5G'", "DEVICE=SIZE");
  assertThrows(() => parseMemorySpec("host=12G,CUDA0"), MemorySpecError, "'CUDA0'");
  assertThrows(() => parseMemorySpec("12G,CUDA0=5G"), MemorySpecError, "'12G'");
  assertThrows(() => parseMemorySpec("CUDA0=1G,cuda0=2G"), MemorySpecError, "'cuda0' is given twice");
  assertThrows(() => parseMemorySpec("lots"), MemorySpecError, "'lots'");
});

Deno.test("autoReserve: max(1 GiB, 5%)", () => {
  assertEquals(autoReserve(8 * GiB), GiB);
  assertEquals(autoReserve(20 * GiB), GiB);
  assertEquals(autoReserve(100 * GiB), 5 * GiB);
  assertEquals(autoReserve(512 * MiB), GiB);
});

Deno.test("budgets: auto is total minus the reserve on every device, the reserve shown", () => {
  const { budgets: b, warnings } = budgets("auto", DEVICES);
  assertEquals(warnings, []);
  assertEquals(b.CUDA0, {
    total: 24 * GiB,
    reserve: Math.round(24 * GiB * 0.05),
    budget: 24 * GiB - Math.round(24 * GiB * 0.05),
    source: "auto",
  });
  assertEquals(b.CUDA1, { total: 8 * GiB, reserve: GiB, budget: 7 * GiB, source: "auto" });
  assertEquals(b[HOST].reserve, Math.round(64 * GiB * 0.05));
  // a device smaller than the reserve gets nothing rather than a negative budget
  assertEquals(budgets("auto", [gpu("MTL0", 512 * MiB)]).budgets.MTL0.budget, 0);
});

Deno.test("budgets: one size applies to every device", () => {
  const { budgets: b, warnings } = budgets("6G", DEVICES);
  assertEquals(budgetBytes(b), { CUDA0: 6 * GiB, CUDA1: 6 * GiB, [HOST]: 6 * GiB });
  assertEquals(b.CUDA0.reserve, 18 * GiB);
  assertEquals(b.CUDA0.source, "spec");
  assertEquals(warnings, []);
});

Deno.test("budgets: named devices (any case, host too); the others keep auto", () => {
  const { budgets: b } = budgets("HOST=12G,cuda0=22G", DEVICES);
  assertEquals(b[HOST], { total: 64 * GiB, reserve: 52 * GiB, budget: 12 * GiB, source: "spec" });
  assertEquals(b.CUDA0.budget, 22 * GiB);
  assertEquals(b.CUDA1, { total: 8 * GiB, reserve: GiB, budget: 7 * GiB, source: "auto" });
});

Deno.test("budgets: an unknown device is an error that names it and lists the known ones", () => {
  assertThrows(() => budgets("CUDA9=1G", DEVICES), MemorySpecError, "'CUDA9'", "host, CUDA0, CUDA1");
});

Deno.test("budgets: more than a device has is kept, with a warning", () => {
  const { budgets: b, warnings } = budgets("CUDA1=10G", DEVICES);
  assertEquals(b.CUDA1, { total: 8 * GiB, reserve: 0, budget: 10 * GiB, source: "spec" });
  assertEquals(warnings, ["--models-memory: CUDA1 budget 10 GiB is more than its 8 GiB"]);
});
