/**
 * Runs llama.cpp's own server tests (`tools/server/tests` in the pinned source, which comes with the
 * engine build) with pytest, against a real llama-server or against Switchyard posing as one. Only
 * the harness's conftest (which downloads models) and two packages this machine cannot install are
 * replaced, by the stand-ins in tests/conformance/.
 */
import { join } from "node:path";
import { engineCacheDir } from "../../router/engine/binary.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const UPSTREAM_TESTS: string = join(
  engineCacheDir(Deno.env.toObject()),
  "src",
  "tools",
  "server",
  "tests",
);

export type Outcome = "passed" | "failed" | "error" | "skipped";

/** Why llama.cpp's tests cannot run here, or undefined when they can. */
export async function harnessMissing(files: string[]): Promise<string | undefined> {
  for (const file of files) {
    try {
      await Deno.stat(join(UPSTREAM_TESTS, "unit", file));
    } catch {
      return `llama.cpp's test sources are not at ${UPSTREAM_TESTS} (they come with the engine build)`;
    }
  }
  const probe = await new Deno.Command("python3", {
    args: ["-c", "import pytest, requests"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!probe?.success) return "python3 with pytest and requests is needed for llama.cpp's harness";
  return undefined;
}

/** A temporary copy of the harness with the given test files under `unit/`, and the stand-ins. */
export async function prepareHarness(files: string[]): Promise<string> {
  const work = await Deno.makeTempDir({ prefix: "switchyard-llamacpp-tests-" });
  await Deno.mkdir(join(work, "unit"));
  await Deno.mkdir(join(work, "tmp"));
  await Deno.copyFile(join(UPSTREAM_TESTS, "utils.py"), join(work, "utils.py"));
  for (const file of files) await Deno.copyFile(join(UPSTREAM_TESTS, "unit", file), join(work, "unit", file));
  for (const f of ["conftest.py", "filelock.py", "wget.py"]) {
    await Deno.copyFile(join(ROOT, "tests", "conformance", f), join(work, f));
  }
  return work;
}

/**
 * An executable that starts Switchyard with llama-server's arguments. `dropOffline`: the router tests'
 * harness gives every router `--offline`, which llama.cpp's router passes only to its children (its
 * downloads still go online), while Switchyard's `--offline` really is offline.
 */
export async function switchyardAsLlamaServer(work: string, opts: { dropOffline: boolean }): Promise<string> {
  const wrapper = join(work, "switchyard-as-llama-server");
  const lines = [
    "#!/bin/sh",
    ...(opts.dropOffline
      ? ['for a in "$@"; do shift; [ "$a" = "--offline" ] || set -- "$@" "$a"; done']
      : []),
    `exec "${Deno.execPath()}" run --allow-all "${join(ROOT, "main.ts")}" "$@"`,
    "",
  ];
  await Deno.writeTextFile(wrapper, lines.join("\n"));
  await Deno.chmod(wrapper, 0o755);
  return wrapper;
}

/** A port for the harness's servers, away from those the other tests pick. */
export function harnessPort(): number {
  return 18000 + Math.floor(Math.random() * 2000);
}

export interface PytestRun {
  code: number;
  /** `file::test[params]` → how it ended */
  outcomes: Map<string, Outcome>;
}

/** Runs pytest on `files` (under `unit/`) with `server` as llama-server; its output goes to ours. */
export async function runPytest(
  work: string,
  files: string[],
  server: string,
  env: Record<string, string>,
): Promise<PytestRun> {
  const report = join(work, `report-${crypto.randomUUID()}.xml`);
  const out = await new Deno.Command("python3", {
    args: [
      "-m",
      "pytest",
      "-v",
      "-p",
      "no:cacheprovider",
      `--junitxml=${report}`,
      ...files.map((f) => `unit/${f}`),
    ],
    cwd: work,
    env: { ...env, LLAMA_SERVER_BIN_PATH: server, PORT: String(harnessPort()), PYTHONPATH: work },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  const xml = await Deno.readTextFile(report).catch(() => "");
  return { code: out.code, outcomes: parseJunit(xml) };
}

/** The outcome of every test case in a JUnit XML report, as pytest writes it. */
export function parseJunit(xml: string): Map<string, Outcome> {
  const outcomes = new Map<string, Outcome>();
  const cases = /<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const [, attrs, body = ""] of xml.matchAll(cases)) {
    const attr = (name: string) => unescapeXml(attrs.match(new RegExp(`\\b${name}="([^"]*)"`))?.[1] ?? "");
    const file = attr("classname").replace(/^unit\./, "");
    const outcome: Outcome = /<failure\b/.test(body)
      ? "failed"
      : /<error\b/.test(body)
      ? "error"
      : /<skipped\b/.test(body)
      ? "skipped"
      : "passed";
    outcomes.set(`${file}::${attr("name")}`, outcome);
  }
  return outcomes;
}

function unescapeXml(text: string): string {
  return text.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}
