import { assertEquals, assertThrows } from "./sources_assert.ts";
import { type IniSection, parseIni } from "../../router/sources/ini.ts";
import { SourceError } from "../../router/sources/types.ts";

const values = (sections: IniSection[]) =>
  Object.fromEntries(
    sections.map((s) => [s.name, Object.fromEntries([...s.entries].map(([k, e]) => [k, e.value]))]),
  );

Deno.test("ini: comments, inline comments, blanks and empty values", () => {
  const text = [
    "; leading comment",
    "# hash comment",
    "   ; indented comment",
    "",
    "\t",
    "[model-a] ; header comment",
    "ctx-size = 4096 ; inline",
    "temp=0.7# tight inline",
    "chat-template-file =   ",
    'reverse-prompt = "quoted words"   ',
    "url = http://h/x#frag",
    "n.b_x-y = 1",
  ].join("\n");
  assertEquals(values(parseIni(text, "f.ini")), {
    "model-a": {
      "ctx-size": "4096",
      temp: "0.7",
      "chat-template-file": "",
      "reverse-prompt": '"quoted words"',
      url: "http://h/x",
      "n.b_x-y": "1",
    },
  });
});

Deno.test("ini: CRLF, CR and LF line endings, BOM, line numbers", () => {
  for (const eol of ["\r\n", "\r", "\n"]) {
    const sections = parseIni(`\uFEFF[a]${eol}k = 1${eol}${eol}[b]${eol}k = 2${eol}`, "f.ini");
    assertEquals(values(sections), { a: { k: "1" }, b: { k: "2" } }, JSON.stringify(eol));
    assertEquals(sections[1].line, 4);
    assertEquals(sections[1].entries.get("k")?.line, 5);
  }
});

Deno.test("ini: last key wins, version skipped, keys before a header go to default, [*] kept", () => {
  const sections = parseIni("version = 1\nc = 1\n[*]\nversion = 2\nc = 2\nc = 3\n", "f.ini");
  assertEquals(values(sections), { default: { c: "1" }, "*": { c: "3" } });
  assertEquals(sections[1].entries.get("c")?.line, 6);
  assertEquals(
    values(parseIni("version = 1\n[x]\n", "f.ini")),
    { x: {} },
    "only version: no default section",
  );
});

Deno.test("ini: section names skip leading blanks, keep inner ones", () => {
  assertEquals(parseIni("[  org/x-GGUF:Q4_K_M  ]\n[a b]\n", "f.ini").map((s) => s.name), [
    "org/x-GGUF:Q4_K_M",
    "a b",
  ]);
});

Deno.test("ini: indented keys are an error with file and line", () => {
  const e = assertThrows(
    () => parseIni("[a]\nk = 1\n  ctx-size = 2\n", "p.ini"),
    SourceError,
    "p.ini:3",
    "column 0",
  );
  assertEquals([e.file, e.line], ["p.ini", 3]);
  assertThrows(() => parseIni("  [a]\n", "p.ini"), SourceError, "p.ini:1");
});

Deno.test("ini: a duplicate section is an error naming both lines", () => {
  const e = assertThrows(
    () => parseIni("[a]\nk = 1\n[b]\n[a]\n", "p.ini"),
    SourceError,
    "p.ini:4",
    "duplicate section [a]",
    "line 1",
  );
  assertEquals(e.line, 4);
  assertThrows(() => parseIni("[*]\n[*]\n", "p.ini"), SourceError, "duplicate section [*]");
  assertThrows(() => parseIni("k = 1\n[default]\n", "p.ini"), SourceError, "duplicate section [default]");
});

Deno.test("ini: malformed lines are errors", () => {
  for (const bad of ["[]", "[  ]", "[a", "[a] junk", "[a]b]", "1key = v", "key value", "= v", "k.ey! = v"]) {
    assertThrows(() => parseIni(`[ok]\n${bad}\n`, "p.ini"), SourceError, "p.ini:2");
  }
});
