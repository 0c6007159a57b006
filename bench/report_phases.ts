/**
 * The report's rows and notes for the streaming, swap and memory phases (report.ts lays out the table). A
 * run that skipped a phase, or one from before it existed, has no figures for it: its rows say n/a.
 */
import { samplesFor } from "./options.ts";
import { f, judged, mib, num, ratio, type Row, signed } from "./report_format.ts";
import {
  type BenchResults,
  type Key,
  KEYS,
  type Measure,
  type ProcessMemory,
  type Spread,
  type StoredFootprint,
  type StreamingResults,
} from "./results.ts";

const spreadCell = (s: Spread | undefined, d = 3) => `${f(s?.p50, d)} / ${f(s?.p90, d)}`;

function singleStreamRows(name: string, m: Record<Key, Spread> | undefined): Row[] {
  const add = (k: Key, p: "p50" | "p90") => num(m?.[k][p]) - num(m?.direct[p]);
  const added = (k: Key) => `${signed(add(k, "p50"), 3)} / ${signed(add(k, "p90"), 3)}`;
  return [
    [
      name,
      ...KEYS.map((k) => spreadCell(m?.[k])),
      ratio(m?.switchyard.p50, m?.direct.p50),
      ratio(m?.switchyard.p50, m?.router.p50),
      "",
    ],
    [
      "↳ added vs direct, p50 / p90 (ms)",
      "0",
      added("switchyard"),
      added("router"),
      "",
      ratio(add("switchyard", "p50"), add("router", "p50")),
      judged([add("switchyard", "p50")], add("switchyard", "p50") <= 0.3, "added p50 ≤ 0.3 ms"),
    ],
  ];
}

export function streamingRows(r: BenchResults): Row[] {
  const S: StreamingResults | undefined = r.streaming;
  const rows = [
    ...singleStreamRows("one stream, new connection: connect → first event, p50 / p90 (ms)", S?.freshMs),
    ...singleStreamRows("one stream, kept-alive connection → first event, p50 / p90 (ms)", S?.keptMs),
  ];
  for (const n of S?.concurrent.map((c) => c.streams) ?? samplesFor(false).concurrentStreams) {
    const c = S?.concurrent.find((x) => x.streams === n);
    const ttfc = (k: Key) => num(c?.ttfcP50Ms[k]);
    const rate = (k: Key) => num(c?.chunksPerS[k]);
    const us = (k: Key, role: string) => f(c?.cpuUsPerChunk[k][role], 1);
    rows.push(
      [
        `${n} streams at once: first event, median (ms)`,
        ...KEYS.map((k) => f(ttfc(k), 2)),
        ratio(ttfc("switchyard"), ttfc("direct")),
        ratio(ttfc("switchyard"), ttfc("router")),
        n === 8
          ? judged([ttfc("switchyard"), ttfc("router")], ttfc("switchyard") <= ttfc("router"), "≤ router")
          : "",
      ],
      [
        `${n} streams at once: events relayed per second`,
        ...KEYS.map((k) => f(rate(k), 0)),
        ratio(rate("switchyard"), rate("direct")),
        ratio(rate("switchyard"), rate("router")),
        judged([rate("switchyard"), rate("router")], rate("switchyard") >= rate("router"), "≥ router"),
      ],
      [
        `${n} streams: CPU µs per event: front / runner / engine`,
        `— / — / ${us("direct", "engine")}`,
        `${us("switchyard", "gateway")} / ${us("switchyard", "runner")} / ${us("switchyard", "engine")}`,
        `${us("router", "router")} / — / ${us("router", "engine")}`,
        "",
        ratio(c?.cpuUsPerChunk.switchyard.gateway, c?.cpuUsPerChunk.router.router),
        "",
      ],
    );
  }
  return rows;
}

export function swapRows(r: BenchResults): Row[] {
  const a = r.swap?.answerMs;
  const stop = r.swap?.switchyardStop;
  const p50 = (k: Key) => num(a?.[k].p50);
  const reported90 = num(stop?.reportedMs.p90);
  const onlySwitchyard = (name: string, s: Spread | undefined, goal = ""): Row => [
    name,
    "—",
    spreadCell(s, 1),
    "—",
    "",
    "",
    goal,
  ];
  return [
    [
      "swap at `--models-max 1`: evict + load + 1-token answer, p50 / p90 (ms)",
      ...KEYS.map((k) => spreadCell(a?.[k], 1)),
      ratio(p50("switchyard"), p50("direct")),
      ratio(p50("switchyard"), p50("router")),
      judged([p50("switchyard"), p50("router")], p50("switchyard") <= p50("router"), "p50 ≤ router"),
    ],
    onlySwitchyard(
      "↳ stop: `evicting` → `stopped` in the gateway's log, p50 / p90 (ms)",
      stop?.evictToStoppedMs,
    ),
    onlySwitchyard("↳ stop: exit command → the engine's last line, p50 / p90 (ms)", stop?.engineExitMs),
    onlySwitchyard(
      "↳ stop: the engine's last line → `stopped` in the log, p50 / p90 (ms)",
      stop?.reportedMs,
      judged([reported90], reported90 <= 10, "p90 ≤ 10 ms"),
    ),
    onlySwitchyard(
      "↳ stop: exit command → `stopped` in the log, p50 / p90 (ms)",
      stop?.exitCommandToStoppedMs,
    ),
  ];
}

const NONE: StoredFootprint = { rssKiB: null, pssKiB: null, privateKiB: null };

/** The figures of several processes added up; n/a if one is missing. */
function sum(fs: StoredFootprint[]): StoredFootprint<number> {
  const add = (pick: (x: StoredFootprint) => Measure) => fs.reduce((s, x) => s + num(pick(x)), 0);
  return { rssKiB: add((x) => x.rssKiB), pssKiB: add((x) => x.pssKiB), privateKiB: add((x) => x.privateKiB) };
}

/** RSS / PSS / private of one process, in MiB. */
export const footprintCell = (x: StoredFootprint | undefined) =>
  `${f(mib(x?.rssKiB), 1)} / ${f(mib(x?.pssKiB), 1)} / ${f(mib(x?.privateKiB), 1)}`;

export function footprintRows(r: BenchResults): Row[] {
  const P = r.memory?.processes ?? [];
  const all = (k: Key, role: string) => P.filter((p) => p.system === k && p.role === role);
  const one = (k: Key, role: string): ProcessMemory | undefined => all(k, role)[0];
  const when = (x: ProcessMemory | undefined, w: "idle" | "load") => x?.[w] ?? NONE;
  const gateway = one("switchyard", "gateway"), router = one("router", "router");
  const runner = one("switchyard", "runner");
  const model: Record<Key, ProcessMemory[]> = {
    direct: all("direct", "engine"),
    switchyard: [
      ...all("switchyard", "gateway"),
      ...all("switchyard", "runner"),
      ...all("switchyard", "engine"),
    ],
    router: [...all("router", "router"), ...all("router", "engine")],
  };
  const rows: Row[] = [];
  for (const w of ["idle", "load"] as const) {
    const label = w === "idle" ? "idle" : "under load";
    const gw = when(gateway, w), rt = when(router, w), run = when(runner, w);
    const gwLimit = w === "idle" ? 60 : 80;
    const spares = all("switchyard", "spare runner").map((p) => footprintCell(p[w])).join("; ");
    const engine = (k: Key) => when(one(k, "engine"), w);
    const total = (k: Key) => r.memory ? sum(model[k].map((p) => p[w])) : NONE;
    rows.push(
      [
        `memory, ${label}: front process RSS / PSS / private (MiB)`,
        "—",
        `gateway ${footprintCell(gw)}`,
        `router ${footprintCell(rt)}`,
        "",
        ratio(mib(gw.rssKiB), mib(rt.rssKiB)),
        judged([num(gw.rssKiB)], mib(gw.rssKiB) <= gwLimit, `gateway RSS ≤ ${gwLimit} MiB`),
      ],
      [
        `memory, ${label}: runner RSS / PSS / private (MiB)`,
        "—",
        footprintCell(run),
        "—",
        "",
        "",
        w === "idle" ? "" : judged(
          [num(run.rssKiB), num(run.privateKiB)],
          mib(run.privateKiB) <= 15 && mib(run.rssKiB) <= 45,
          "private ≤ 15 MiB, RSS ≤ 45 MiB",
        ),
      ],
      [`memory, ${label}: spare runner RSS / PSS / private (MiB)`, "—", spares || "n/a", "—", "", "", ""],
      [
        `memory, ${label}: engine RSS / PSS / private (MiB)`,
        ...KEYS.map((k) => footprintCell(engine(k))),
        ratio(engine("switchyard").rssKiB, engine("direct").rssKiB),
        ratio(engine("switchyard").rssKiB, engine("router").rssKiB),
        "",
      ],
      [
        `memory, ${label}: one loaded model, all its processes (MiB)`,
        ...KEYS.map((k) => footprintCell(total(k))),
        ratio(total("switchyard").pssKiB, total("direct").pssKiB),
        ratio(total("switchyard").pssKiB, total("router").pssKiB),
        "",
      ],
    );
  }
  return rows;
}

export function streamingNotes(r: BenchResults): string[] {
  const S = r.streaming;
  if (!S) return ["Streaming rows: not measured in this run (`--phases streaming`)."];
  const n = S.freshMs.direct.n;
  const c = S.concurrent.map((x) => `${x.streams} (${x.rounds} round${x.rounds === 1 ? "" : "s"})`).join(
    " and ",
  );
  return [
    `Streaming rows: a streamed \`/v1/completions\` of ${S.maxTokens} tokens; one stream at a time, ${n} per ` +
    "system on a new connection (timed from before the connect) and as many on one kept-alive connection " +
    "(from the request's first byte), interleaved round-robin across the three systems.",
    `TCP connections the kept-alive samples needed (a / b / c): ${
      KEYS.map((k) => S.keptConnections[k]).join(" / ")
    } for ${n} streams each: a server that closes the connection after an event stream (llama-server does) ` +
    "makes them reconnect, outside the timed part; the same holds for the streams at once.",
    `Streams at once: ${c} per system, interleaved; each round starts them together, one connection each, ` +
    "and reads each to its end; events per second = data events over the rounds' time; the first-event " +
    "median is over every stream; CPU per event from /proc over each round, the client's included.",
  ];
}

export function swapNotes(r: BenchResults): string[] {
  const W = r.swap;
  if (!W) return ["Swap rows: not measured in this run (`--phases swap`)."];
  return [
    `Swap rows: ${
      W.models.map((m) => `${m.name} (${m.mib} MiB)`).join(" and ")
    }, tiny GGUFs grown by their feed-forward width; ` +
    "(b) and (c) at `--models-max 1`, requests alternating between the two so each evicts one model and " +
    `loads the other; a 1-token \`/completion\` on a new connection, ${W.answerMs.switchyard.n} per system ` +
    "after 2 unmeasured, interleaved, each waiting until the evicted model is unloaded before the next sample.",
    "(a) is the same by hand: SIGTERM to the running llama-server, its exit, the other one spawned and its answer.",
    "Switchyard's stop rows are read from its log: the engine's own lines (its clock) are tied to the gateway's " +
    '(UTC, to the millisecond) by the engine\'s one answer (its "stop processing" line against the moment the ' +
    "bench got the answer), so the engine's times come out late by that relay (well under 1 ms) and the " +
    '"last line → stopped" interval short by as much; the last line is "cleaning up before exit", just ' +
    "before the process ends.",
    `Stops timed: ${W.switchyardStop.engineExitMs.n} of ${W.switchyardStop.stops} (the warm-up's included); ` +
    "a stop is left out when the gateway's log lacks a line it needs (an engine's last lines not relayed, " +
    "a stop by signal that logs no exit command).",
  ];
}

export function footprintNotes(r: BenchResults): string[] {
  const M = r.memory;
  if (!M) return ["Memory rows (RSS / PSS / private): not measured in this run (`--phases memory`)."];
  return [
    "Memory rows: `/proc/PID/smaps_rollup`, RSS / PSS / private (Private_Clean + Private_Dirty); PSS splits " +
    "each shared page among the processes mapping it (the Deno binary's among the gateway, its runners, the " +
    "bench and any other Deno process on the machine; the model file's among the engines), private is what " +
    "the process's exit would free.",
    "Idle: the model loaded and warmed up, before any load; under load: the peak of each figure over samples " +
    `every ${M.everyMs} ms during ${M.loadMs} ms of \`/tokenize\` at ${M.connections} connections, one ` +
    "system at a time.",
    "One loaded model: (a) the engine; (b) gateway + runner + engine, the spare runner apart; (c) router + " +
    "engine; its ratios compare PSS.",
  ];
}
