/**
 * Byte sizes as people write them on a command line (`12G`, `512M`, `1.5GiB`, `123456`) and as the
 * gateway writes them in messages (`1.5 GiB`). Suffixes are binary, as llama.cpp's MiB figures are.
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** A size that is not a non-negative number with an optional K/M/G/T suffix. */
export class SizeError extends Error {
  override name = "SizeError";
}

const UNIT: Record<string, number> = { "": 1, k: KiB, m: MiB, g: GiB, t: TiB };
// `i` needs a unit letter before it: "5iB" is a typo, not a size.
const SIZE_RE = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(i?))?(b?)$/i;

/**
 * Parses a size in bytes. K/M/G/T are binary (1K = 1024), case-insensitive, optionally followed by
 * `i` and/or `B`; a bare number is bytes. Fractions round to the nearest byte.
 *
 * @example
 * ```ts
 * parseSize("1.5G"); // 1610612736
 * parseSize("512MiB"); // 536870912
 * parseSize("123456"); // 123456
 * ```
 */
export function parseSize(text: string): number {
  const m = SIZE_RE.exec(text.trim());
  if (!m) {
    throw new SizeError(`invalid size '${text}': expected bytes or a number with K, M, G or T (e.g. 12G)`);
  }
  const bytes = Math.round(Number(m[1]) * UNIT[(m[2] ?? "").toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new SizeError(`invalid size '${text}': too large`);
  return bytes;
}

const FORMAT_UNITS: ReadonlyArray<readonly [string, number]> = [
  ["TiB", TiB],
  ["GiB", GiB],
  ["MiB", MiB],
  ["KiB", KiB],
];

/**
 * Formats bytes for a message, in the largest binary unit that keeps the number at least 1, with at
 * most one decimal.
 *
 * @example
 * ```ts
 * formatBytes(1610612736); // "1.5 GiB"
 * formatBytes(512 * 1024 * 1024); // "512 MiB"
 * formatBytes(100); // "100 B"
 * ```
 */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? "-" : "";
  const abs = Math.abs(bytes);
  for (const [unit, size] of FORMAT_UNITS) {
    if (abs >= size) return `${sign}${trimDecimal(abs / size)} ${unit}`;
  }
  return `${sign}${Math.round(abs)} B`;
}

function trimDecimal(n: number): string {
  return n.toFixed(1).replace(/\.0$/, "");
}
