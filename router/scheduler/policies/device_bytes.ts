/**
 * Bytes per device, the unit every memory policy reasons in. A device is named as llama.cpp names
 * it (`CUDA0`, `ROCm1`, `Vulkan0`, `MTL0`, `Host`); a device a model does not use is absent or 0.
 * Plain records rather than a class, so the memory module's projections and budgets pass straight
 * through and tests can write them as literals.
 */

export type DeviceId = string;
export type DeviceBytes = Readonly<Record<DeviceId, number>>;

/** The devices on which `bytes` is positive, in a stable order (for messages and tests). */
export function devicesOf(bytes: DeviceBytes): DeviceId[] {
  return Object.keys(bytes).filter((d) => bytes[d] > 0).sort();
}

/** Σ of several per-device amounts. */
export function sumBytes(parts: Iterable<DeviceBytes>): Record<DeviceId, number> {
  const total: Record<DeviceId, number> = {};
  for (const part of parts) {
    for (const [device, n] of Object.entries(part)) total[device] = (total[device] ?? 0) + n;
  }
  return total;
}

/** `bytes` on the given devices only: what counts when a newcomer needs just those. */
export function onDevices(bytes: DeviceBytes, devices: readonly DeviceId[]): number {
  return devices.reduce((n, d) => n + Math.max(0, bytes[d] ?? 0), 0);
}

/** Whether `have` covers `need` on every device `need` names. */
export function covers(have: DeviceBytes, need: DeviceBytes): boolean {
  return devicesOf(need).every((d) => (have[d] ?? 0) >= need[d]);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * Bytes as people read them, in llama.cpp's binary units: `512 B`, `35.8 MiB`, `7.25 GiB`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./device_bytes.ts";
 * assert.equal(formatBytes(8 * 2 ** 30), "8.00 GiB");
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? "-" : "";
  let n = Math.abs(bytes);
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  if (unit === 0) return `${sign}${Math.round(n)} B`;
  // two decimals in GiB and above, where a tenth is still a lot of memory
  return `${sign}${n.toFixed(unit >= 3 ? 2 : 1)} ${UNITS[unit]}`;
}
