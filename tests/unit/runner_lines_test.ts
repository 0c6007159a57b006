import { assertEquals } from "../helpers/assert.ts";
import { parseEngineLine } from "../../runners/child_protocol.ts";
import { forEachLine } from "../../runners/lines.ts";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function collect(chunks: Uint8Array[]): Promise<string[]> {
  const lines: string[] = [];
  await forEachLine(streamOf(chunks), (line) => lines.push(line));
  return lines;
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("forEachLine joins lines split across reads, including inside a UTF-8 character", async () => {
  const all = bytes("alpha\nbé");
  const split = all.length - 1; // between the two bytes of "é"
  assertEquals(
    await collect([all.subarray(0, 3), all.subarray(3, split), all.subarray(split), bytes("ta\r\n\n")]),
    [
      "alpha",
      "béta",
      "",
    ],
  );
});

Deno.test("forEachLine yields a final line without a newline", async () => {
  assertEquals(await collect([bytes("one\ntwo")]), ["one", "two"]);
  assertEquals(await collect([]), []);
});

Deno.test("forEachLine handles a line of several megabytes in small reads", async () => {
  const big = "x".repeat(4 * 1024 * 1024);
  const all = bytes(`${big}\nafter\n`);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 65536) chunks.push(all.subarray(i, i + 65536));
  const lines = await collect(chunks);
  assertEquals(lines.length, 2);
  assertEquals(lines[0].length, big.length);
  assertEquals(lines[1], "after");
});

Deno.test("parseEngineLine maps llama-server's state lines and passes the rest through as logs", () => {
  const state = (s: unknown) => `cmd_child_to_router:state:${JSON.stringify(s)}`;
  const progress = { stages: ["text_model"], current: "text_model", value: 0.5 };
  assertEquals(parseEngineLine(state({ state: "loading", payload: progress })), {
    type: "progress",
    progress,
  });
  assertEquals(parseEngineLine(state({ state: "loading", payload: { stage: "mmproj_model" } })), {
    type: "progress",
    progress: { stage: "mmproj_model" },
  });
  assertEquals(parseEngineLine(state({ state: "ready", payload: { id: "m" } })), {
    type: "ready",
    info: { id: "m" },
  });
  assertEquals(parseEngineLine(state({ state: "ready", payload: {} })), { type: "ready", info: {} });
  assertEquals(parseEngineLine(state({ state: "sleeping", payload: {} })), { type: "sleeping" });
  for (
    const line of ["srv  load_model: loading", state({ state: "bogus" }), "cmd_child_to_router:state:{oops"]
  ) {
    assertEquals(parseEngineLine(line), { type: "log", line });
  }
});
