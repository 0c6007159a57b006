/**
 * `--models-memory SPEC`: how many bytes models may claim on each device.
 * - `auto` (the default): each device's total minus a reserve of max(1 GiB, 5%);
 * - one size (`20G`): that budget on every device;
 * - a list (`host=12G,CUDA0=22G`): per device, by the engine's device names (matched without regard
 *   to case, as the engine matches `-dev`) plus `host`; devices left out keep the `auto` budget.
 * Budgets are keyed by device name with host RAM under `HOST` (`Host`), as projections are.
 */
import type { Device } from "./devices.ts";
import { HOST } from "./projection.ts";
import { formatBytes, GiB, parseSize, SizeError } from "./size.ts";

export type BudgetSpec =
  | { kind: "auto" }
  | { kind: "all"; bytes: number }
  | { kind: "devices"; bytes: Readonly<Record<string, number>> };

/** A `--models-memory` value that cannot be used; the message names the part at fault. */
export class MemorySpecError extends Error {
  override name = "MemorySpecError";
}

function size(text: string, where: string): number {
  try {
    return parseSize(text);
  } catch (e) {
    if (e instanceof SizeError) throw new MemorySpecError(`--models-memory: ${where}: ${e.message}`);
    throw e;
  }
}

/**
 * Parses the syntax of a spec; device names are checked against the real devices by `budgets`.
 *
 * @example
 * ```ts
 * parseMemorySpec("host=12G,CUDA0=22G"); // { kind: "devices", bytes: { host: 12884901888, CUDA0: 23622320128 } }
 * ```
 */
export function parseMemorySpec(spec: string): BudgetSpec {
  const text = spec.trim();
  if (text === "" || text.toLowerCase() === "auto") return { kind: "auto" };
  if (!text.includes("=")) return { kind: "all", bytes: size(text, `'${text}'`) };
  const bytes: Record<string, number> = {};
  const seen = new Set<string>();
  for (const raw of text.split(",")) {
    const part = raw.trim();
    const eq = part.indexOf("=");
    const name = eq < 0 ? "" : part.slice(0, eq).trim();
    if (!name) {
      throw new MemorySpecError(
        `--models-memory: '${part}' is not DEVICE=SIZE (a list is like host=12G,CUDA0=22G; one size alone is like 20G)`,
      );
    }
    if (seen.has(name.toLowerCase())) {
      throw new MemorySpecError(`--models-memory: device '${name}' is given twice`);
    }
    seen.add(name.toLowerCase());
    bytes[name] = size(part.slice(eq + 1).trim(), `'${part}'`);
  }
  return { kind: "devices", bytes };
}

/** The `auto` reserve: what models leave free on a device, max(1 GiB, 5% of its total). */
export function autoReserve(total: number): number {
  return Math.max(GiB, Math.round(total * 0.05));
}

export interface Budget {
  total: number;
  /** what models leave unclaimed: `total - budget` (0 when the budget exceeds the total) */
  reserve: number;
  budget: number;
  /** `spec`: given in --models-memory; `auto`: total minus the auto reserve */
  source: "auto" | "spec";
}

/**
 * The budget of each device under a spec. A device name the engine does not list is an error naming
 * it; a budget above a device's total is kept (unified memory, swap) with a warning.
 */
export function budgets(
  spec: BudgetSpec | string,
  devices: readonly Device[],
): { budgets: Record<string, Budget>; warnings: string[] } {
  const s = typeof spec === "string" ? parseMemorySpec(spec) : spec;
  const given = new Map<string, number>();
  if (s.kind === "devices") {
    const byLower = new Map(devices.map((d) => [d.name.toLowerCase(), d.name]));
    byLower.set(HOST.toLowerCase(), HOST);
    for (const [name, bytes] of Object.entries(s.bytes)) {
      const found = byLower.get(name.toLowerCase());
      if (!found) {
        const known = ["host", ...devices.filter((d) => d.name !== HOST).map((d) => d.name)].join(", ");
        throw new MemorySpecError(`--models-memory: unknown device '${name}' (devices: ${known})`);
      }
      given.set(found, bytes);
    }
  }
  const out: Record<string, Budget> = {};
  const warnings: string[] = [];
  for (const d of devices) {
    const bytes = s.kind === "all" ? s.bytes : given.get(d.name);
    if (bytes === undefined) {
      const reserve = Math.min(d.total, autoReserve(d.total));
      out[d.name] = { total: d.total, reserve, budget: d.total - reserve, source: "auto" };
      continue;
    }
    if (bytes > d.total) {
      warnings.push(
        `--models-memory: ${d.name} budget ${formatBytes(bytes)} is more than its ${formatBytes(d.total)}`,
      );
    }
    out[d.name] = { total: d.total, reserve: Math.max(0, d.total - bytes), budget: bytes, source: "spec" };
  }
  return { budgets: out, warnings };
}

/** The budgets alone, per device, as the admission policy takes them. */
export function budgetBytes(b: Readonly<Record<string, Budget>>): Record<string, number> {
  return Object.fromEntries(Object.entries(b).map(([device, x]) => [device, x.budget]));
}
