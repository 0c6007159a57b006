/** Sizes as --models-memory takes them and as messages show them (router/memory/size.ts). */
import { assertEquals } from "../helpers/assert.ts";
import { assertThrows } from "./sources_assert.ts";
import { formatBytes, GiB, KiB, MiB, parseSize, SizeError, TiB } from "../../router/memory/size.ts";

Deno.test("parseSize: binary suffixes, optional i and B, any case, bare bytes", () => {
  const cases: Array<[string, number]> = [
    ["123456", 123456],
    ["0", 0],
    ["12G", 12 * GiB],
    ["512M", 512 * MiB],
    ["1.5G", 1.5 * GiB],
    ["1.5GiB", 1.5 * GiB],
    ["2gb", 2 * GiB],
    ["4k", 4 * KiB],
    ["1T", TiB],
    ["1 G", GiB],
    [" 7m ", 7 * MiB],
    ["100B", 100],
    [".5K", 512],
    ["0.1K", 102],
  ];
  for (const [text, bytes] of cases) assertEquals(parseSize(text), bytes, text);
});

Deno.test("parseSize: anything else is a SizeError that quotes the input", () => {
  for (const bad of ["", "G", "-1G", "12X", "5iB", "1.2.3M", "12 GG", "1e9", "0x10"]) {
    assertThrows(() => parseSize(bad), SizeError, `'${bad}'`);
  }
});

Deno.test("formatBytes: the largest unit that keeps the number at least 1, one decimal at most", () => {
  assertEquals(formatBytes(1.5 * GiB), "1.5 GiB");
  assertEquals(formatBytes(512 * MiB), "512 MiB");
  assertEquals(formatBytes(12 * GiB), "12 GiB");
  assertEquals(formatBytes(100), "100 B");
  assertEquals(formatBytes(1536), "1.5 KiB");
  assertEquals(formatBytes(2 * TiB), "2 TiB");
  assertEquals(formatBytes(-3 * MiB), "-3 MiB");
  assertEquals(formatBytes(0), "0 B");
});
