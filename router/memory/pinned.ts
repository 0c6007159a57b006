/**
 * Pinned models are never evicted, so their claims are held for good: a configuration whose pins
 * alone exceed a device's budget could never load them all, and is refused when it is read (at
 * start-up, or on reload, which then keeps the models it had).
 */
import { formatBytes } from "./size.ts";

export interface PinnedClaim {
  modelId: string;
  /** what the model would claim per device */
  bytes: Readonly<Record<string, number>>;
}

/**
 * Why the pins cannot all be held at once, or undefined when they can. Devices without a budget are
 * not judged here: admission refuses a model that needs one.
 *
 * @example
 * ```ts
 * pinnedOverBudget([{ modelId: "a", bytes: { Host: 6 } }, { modelId: "b", bytes: { Host: 5 } }], { Host: 10 });
 * // "the pinned models need more than the memory budgets: on Host a (6 B), b (5 B) claim 11 B, ..."
 * ```
 */
export function pinnedOverBudget(
  pins: readonly PinnedClaim[],
  budgets: Readonly<Record<string, number>>,
): string | undefined {
  const problems: string[] = [];
  for (const device of Object.keys(budgets).sort()) {
    const holders = pins.filter((p) => (p.bytes[device] ?? 0) > 0);
    const sum = holders.reduce((n, p) => n + p.bytes[device], 0);
    if (sum <= budgets[device]) continue;
    const named = holders.map((p) => `${p.modelId} (${formatBytes(p.bytes[device])})`);
    problems.push(
      `on ${device} ${named.join(", ")} claim ${formatBytes(sum)}, more than its budget of ` +
        `${formatBytes(budgets[device])}`,
    );
  }
  if (problems.length === 0) return undefined;
  return `the pinned models need more than the memory budgets: ${problems.join("; ")} ` +
    "(unpin some, or raise --models-memory)";
}
