/** The KV cache store's names: model folders, slot files, temporaries, manifests, and what is refused. */
import {
  isModelFolderName,
  manifestFileName,
  modelFolderName,
  parseStoreFile,
  slotFileName,
  tempManifestFileName,
  tempSlotFileName,
} from "../../router/kvcache/files.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

const KEY = "0123456789abcdef";

Deno.test("a model's folder is its id made safe, then a hash of the id", () => {
  const name = modelFolderName("ggml-org/tiny-GGUF:Q8_0");
  assert(/^ggml-org_tiny-GGUF_Q8_0-[0-9a-f]{12}$/.test(name), name);
  assert(isModelFolderName(name));
  // ids that read alike once made safe still get folders of their own
  assert(modelFolderName("a/b") !== modelFolderName("a_b"));
  assertEquals(modelFolderName("a/b"), modelFolderName("a/b"));
  // nothing in a folder name climbs out of the root, however the id is spelled
  for (const id of ["..", "../../etc", "/abs/path", "a\\b", "x\u0000y", "..."]) {
    const folder = modelFolderName(id);
    assert(isModelFolderName(folder) && !folder.includes("..") && !folder.includes("/"), folder);
  }
  assert(modelFolderName("x".repeat(300)).length <= 48 + 13, "long ids are cut short");
});

Deno.test("the store's own names parse back to what they stand for", () => {
  assertEquals(parseStoreFile(manifestFileName(KEY)), { kind: "manifest", key: KEY });
  assertEquals(parseStoreFile(slotFileName(KEY, 3)), { kind: "slot", key: KEY, slot: 3 });
  assertEquals(parseStoreFile(tempSlotFileName(KEY, 3, "abc123")), { kind: "temp", key: KEY });
  assertEquals(parseStoreFile(tempManifestFileName(KEY, "z9")), { kind: "temp", key: KEY });
  assertEquals(slotFileName(KEY, 0), `${KEY}.slot0.bin`);
});

Deno.test("any other name is not the store's: it is never read, restored or counted", () => {
  for (
    const name of [
      "slot_save_file.bin",
      `${KEY}.slot1.bin.bak`,
      `../${KEY}.json`,
      `${KEY}/x.json`,
      `${KEY.toUpperCase()}.json`,
      `${KEY}0.json`,
      `${KEY}.slot-1.bin`,
      `${KEY}.slot1.tmp-`,
      `${KEY}.slot1.tmp-a.b`,
      "",
    ]
  ) assertEquals(parseStoreFile(name), undefined, name);
});

Deno.test("names are only made from a well-formed key, slot and nonce", () => {
  const throws = (fn: () => unknown) => {
    try {
      fn();
    } catch {
      return true;
    }
    return false;
  };
  assert(throws(() => slotFileName("../x", 0)));
  assert(throws(() => slotFileName(KEY, -1)));
  assert(throws(() => slotFileName(KEY, 1.5)));
  assert(throws(() => manifestFileName("abc")));
  assert(throws(() => tempSlotFileName(KEY, 0, "../x")));
});
