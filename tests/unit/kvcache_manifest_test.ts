/** A manifest is read with distrust: only what the store itself would have written is used. */
import { type KvManifest, manifestTotals, parseManifest } from "../../router/kvcache/manifest.ts";
import { assertEquals } from "../helpers/assert.ts";

const KEY = "0123456789abcdef";
const GOOD: KvManifest = {
  version: 1,
  modelId: "a",
  key: KEY,
  savedAt: 1700000000000,
  usedAt: 1700000000500,
  slots: [
    { slot: 0, file: `${KEY}.slot0.bin`, tokens: 3007, bytes: 1587788, saveMs: 2.4 },
    { slot: 2, file: `${KEY}.slot2.bin`, tokens: 10, bytes: 5000, saveMs: 0.1 },
  ],
};

Deno.test("a manifest the store wrote reads back as it was, and totals its slots", () => {
  assertEquals(parseManifest(JSON.stringify(GOOD), KEY), GOOD);
  assertEquals(manifestTotals(GOOD), { tokens: 3017, bytes: 1592788 });
});

Deno.test("a damaged or planted manifest is not used", () => {
  const with_ = (patch: Record<string, unknown>) => JSON.stringify({ ...GOOD, ...patch });
  const slot = (patch: Record<string, unknown>) => with_({ slots: [{ ...GOOD.slots[0], ...patch }] });
  const bad: Record<string, string> = {
    "not JSON": "{",
    "another key's manifest": JSON.stringify(GOOD).replaceAll(KEY, "fedcba9876543210"),
    "another key, this key's files": with_({ key: "fedcba9876543210" }),
    "another version": with_({ version: 2 }),
    "a path out of the folder": slot({ file: `../${KEY}.slot0.bin` }),
    "an absolute path": slot({ file: `/etc/${KEY}.slot0.bin` }),
    "another slot's file": slot({ file: `${KEY}.slot1.bin` }),
    "a temporary file": slot({ file: `${KEY}.slot0.tmp-abc` }),
    "a negative count": slot({ tokens: -1 }),
    "a fractional slot": slot({ slot: 0.5 }),
    "a slot twice": with_({ slots: [GOOD.slots[0], GOOD.slots[0]] }),
    "no slots list": with_({ slots: "all" }),
  };
  for (const [what, text] of Object.entries(bad)) assertEquals(parseManifest(text, KEY), undefined, what);
});
