/**
 * The projection-error report, `bench/results/projection.md`: a pure function of the stored results
 * (`projection.json`), so that tests/unit/bench_report_test.ts can check the committed pair agrees.
 */
import type { MachineInfo } from "./procs.ts";
import { markdownTable } from "./report.ts";

/** Bytes of one model summed over its devices, per kind of buffer. */
export interface Figures {
  model: number;
  context: number;
  compute: number;
  total: number;
}

export const COMPONENTS: readonly (keyof Figures)[] = ["model", "context", "compute", "total"];

export interface ProjectionRow {
  /** the fixture's name and its file size */
  model: string;
  fileMiB: number;
  ctx: number;
  /** `f16` (flash attention auto) or `q8_0` (with `-fa on`, which a quantised V cache needs) */
  kv: string;
  /** the engine's own figures after a real load (`-lv 4` buffer lines) */
  observed: Figures;
  /** `llama-fit-params --fit-print on`; null when it gave nothing */
  fitParams: Figures | null;
  gguf: Figures;
}

export interface ProjectionResults {
  date: string;
  engine: string;
  /** the llama-server flags every case shared */
  flags: string[];
  machine: MachineInfo;
  rows: ProjectionRow[];
}

const MIB = 1024 * 1024;
const FMT_IGNORE = "<!-- deno-fmt-ignore-file -->";

/** (projected − observed) / observed, in %; undefined where the engine allocated nothing. */
export function errorPct(projected: number, observed: number): number | undefined {
  return observed > 0 ? (projected - observed) / observed * 100 : undefined;
}

const pct = (x: number | undefined) => x === undefined ? "—" : `${x >= 0 ? "+" : ""}${x.toFixed(1)}`;
const mib = (bytes: number) => (bytes / MIB).toFixed(bytes >= 10 * MIB ? 1 : 2);

function errors(p: Figures | null, o: Figures): string {
  return p ? COMPONENTS.map((c) => pct(errorPct(p[c], o[c]))).join(" / ") : "n/a";
}

/** Per source and component: the mean absolute error, and the worst under-projection. */
function summary(rows: readonly ProjectionRow[], source: "fitParams" | "gguf"): string[] {
  return COMPONENTS.map((c) => {
    const errs = rows.flatMap((r) => {
      const p = r[source];
      const e = p ? errorPct(p[c], r.observed[c]) : undefined;
      return e === undefined ? [] : [e];
    });
    if (errs.length === 0) return "n/a";
    const mean = errs.reduce((a, e) => a + Math.abs(e), 0) / errs.length;
    return `${mean.toFixed(1)} (${pct(Math.min(...errs))})`;
  });
}

/** The file's whole text, trailing newline included. */
export function renderProjectionReport(r: ProjectionResults): string {
  const table = markdownTable(
    [
      "model (file)",
      "-c",
      "KV",
      "observed MiB: model / KV / compute / total",
      "fit-params error %: model / KV / compute / total",
      "GGUF estimate error %: model / KV / compute / total",
    ],
    r.rows.map((row) => [
      `${row.model} (${row.fileMiB} MiB)`,
      String(row.ctx),
      row.kv,
      COMPONENTS.map((c) => mib(row.observed[c])).join(" / "),
      errors(row.fitParams, row.observed),
      errors(row.gguf, row.observed),
    ]),
  );
  const sums = markdownTable(
    ["source", "model", "KV", "compute", "total"],
    [["fit-params", ...summary(r.rows, "fitParams")], ["GGUF estimate", ...summary(r.rows, "gguf")]],
  );
  const m = r.machine;
  return [
    FMT_IGNORE,
    "",
    "## Memory projection error",
    "",
    `Each case's projection, by the engine's fitter and by Switchyard's GGUF estimate, against the buffers the engine itself reported after loading it (\`-lv 4\`), in % of the latter: positive is an over-projection, negative an under-projection.`,
    `Every case ran with \`${
      r.flags.join(" ")
    }\` and its own \`-c\` and KV type; \`q8_0\` runs add \`-fa on\`.`,
    "",
    table,
    "",
    "Mean absolute error in % (worst under-projection in parentheses):",
    "",
    sums,
    "",
    "The fitter prints whole MiB rounded down, so on these small buffers it reads low; the gateway claims each of its figures at the top of its MiB.",
    "The GGUF estimate adds 10% to everything it counts, and a floor of 32 MiB of compute on a device that runs layers.",
    "A `—` is a buffer the engine did not allocate (0 MiB).",
    "",
    `Engine ${r.engine}; ${m.cpu}, ${m.nproc} cores, ${m.memGiB} GiB; Deno ${m.deno}; ${r.date}.`,
    "",
  ].join("\n");
}

// After a change to the wording here: `deno run --allow-read --allow-write bench/projection_report.ts`
// re-renders results/projection.md from the stored results/projection.json.
if (import.meta.main) {
  const dir = new URL("./results/", import.meta.url);
  const stored: ProjectionResults = JSON.parse(await Deno.readTextFile(new URL("projection.json", dir)));
  await Deno.writeTextFile(new URL("projection.md", dir), renderProjectionReport(stored));
}
