/** How the report writes its figures: the cell formats every row of `report.ts` shares. */
import type { Measure } from "./results.ts";

/** One table row: the metric's name, then a cell per column. */
export type Row = string[];

export const num = (x: Measure | undefined): number => x ?? NaN;
export const f = (x: Measure | undefined, d = 2) => (Number.isFinite(num(x)) ? num(x).toFixed(d) : "n/a");
export const signed = (x: number, d = 2) =>
  Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(d)}` : "n/a";
export const ratio = (a: Measure | undefined, b: Measure | undefined) => {
  const q = num(a) / num(b);
  return Number.isFinite(q) && num(b) !== 0 ? `${q.toFixed(2)}×` : "—";
};
export const mib = (kib: Measure | undefined) => num(kib) / 1024;
export const target = (ok: boolean, what: string) => `${ok ? "✅ met" : "❌ missed"}: ${what}`;

/** A target judged only when every figure behind it was measured; otherwise just named. */
export const judged = (figures: number[], ok: boolean, what: string) =>
  figures.every(Number.isFinite) ? target(ok, what) : `target: ${what}`;
