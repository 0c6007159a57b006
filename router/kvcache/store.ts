/**
 * The KV cache store: engines' slot caches saved when their model is stopped on purpose and restored
 * when it loads again, so a swap does not cost the conversation's prefill (issue 11). Files live in a
 * folder per model under the store's root (files.ts), keyed by what they are valid for (key.ts); they
 * are written under a temporary name and renamed, read only by the names the store gives them, bounded
 * in total by `--swap-kv-cache-max` (least recently used deleted first), and deleted with the model or
 * when its key changes.
 */
import { join } from "node:path";
import type { OptionMap } from "../flags/flags.ts";
import { formatBytes } from "../memory/size.ts";
import type { ModelSpec } from "../sources/types.ts";
import {
  isModelFolderName,
  manifestFileName,
  modelFolderName,
  parseStoreFile,
  slotFileName,
  tempManifestFileName,
  tempSlotFileName,
} from "./files.ts";
import { launchKey, type LaunchKeyContext, slotCount } from "./key.ts";
import { type KvManifest, manifestTotals, parseManifest, type SavedSlot } from "./manifest.ts";
import { overBudget, slotsToSave } from "./policy.ts";
import type { KvCachePort, KvCacheStats, KvCacheSummary, KvCacheTarget } from "./port.ts";
import { type SlotApi, SlotApiError } from "./slots_client.ts";

/** How long a save or a restore may take by default. */
export const KV_CACHE_TIMEOUT_MS = 30_000;

export interface KvCacheStoreOptions {
  /** the folder every model's folder lives in */
  root: string;
  /** `--swap-kv-cache`: on for every model whose preset does not say `swap-kv-cache = false` */
  enabled: boolean;
  /** `--swap-kv-cache-max` in bytes */
  maxBytes: number;
  keyContext: LaunchKeyContext;
  slots: SlotApi;
  log: (line: string) => void;
  timeoutMs?: number;
  /** ms since the epoch (tests pass their own) */
  now?: () => number;
}

interface Entry {
  folder: string;
  manifest: KvManifest;
  inUse: boolean;
}

export class KvCacheStore implements KvCachePort {
  readonly timeoutMs: number;
  readonly #opts: KvCacheStoreOptions;
  readonly #now: () => number;
  /** by `<folder>/<key>` */
  readonly #entries = new Map<string, Entry>();
  /** slots restored on a model's current engine (by model id, with that engine's port) */
  readonly #restored = new Map<string, { port: number; slots: Set<number> }>();
  /** models whose folder could not be made: they run without the feature */
  readonly #broken = new Set<string>();
  readonly #stats: Omit<KvCacheStats, "storedBytes"> = {
    saves: 0,
    saveFailures: 0,
    restores: 0,
    restoreFailures: 0,
    restoredTokens: 0,
    savedBytes: 0,
    restoredBytes: 0,
    evictions: 0,
  };

  private constructor(opts: KvCacheStoreOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? KV_CACHE_TIMEOUT_MS;
  }

  /**
   * Opens the store: reads what earlier runs saved, drops their leftovers, applies the bound. A root it
   * cannot read is logged, not thrown: the gateway serves all the same, and saves start afresh.
   */
  static async open(opts: KvCacheStoreOptions): Promise<KvCacheStore> {
    const store = new KvCacheStore(opts);
    try {
      await store.#scan();
    } catch (err) {
      store.#log(`cannot read ${opts.root}: ${(err as Error).message}`);
    }
    return store;
  }

  async #scan(): Promise<void> {
    const root = this.#opts.root;
    for (const folder of await listDir(root)) {
      if (!folder.isDirectory || !isModelFolderName(folder.name)) continue;
      const dir = join(root, folder.name);
      for (const file of await listDir(dir)) {
        const parsed = parseStoreFile(file.name);
        if (parsed?.kind === "temp") await removeQuietly(join(dir, file.name));
        if (parsed?.kind !== "manifest" || !file.isFile) continue;
        const manifest = await readManifest(dir, parsed.key);
        if (manifest) {
          this.#entries.set(this.#entryId(dir, parsed.key), { folder: dir, manifest, inUse: false });
        } else await this.#dropKey(dir, parsed.key);
      }
    }
    await this.#applyBound();
  }

  enabledFor(spec: ModelSpec): boolean {
    return (spec.swapKvCache ?? this.#opts.enabled) && !this.#broken.has(spec.id);
  }

  engineOptions(spec: ModelSpec): OptionMap {
    return new Map([["--slot-save-path", this.#folderOf(spec.id)]]);
  }

  async prepare(spec: ModelSpec): Promise<void> {
    try {
      await Deno.mkdir(this.#folderOf(spec.id), { recursive: true });
    } catch (err) {
      this.#broken.add(spec.id);
      this.#log(`cannot make the folder for ${spec.id}, it runs without: ${(err as Error).message}`);
    }
  }

  async save(target: KvCacheTarget, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const folder = this.#folderOf(target.modelId);
    const restored = this.#restored.get(target.modelId);
    this.#restored.delete(target.modelId);
    let earlier: Entry | undefined;
    try {
      const key = await launchKey(target.modelId, target.launch, this.#opts.keyContext);
      // another model's save may apply the bound meanwhile: it must not delete files this save renames in
      earlier = this.#entries.get(this.#entryId(folder, key));
      if (earlier) earlier.inUse = true;
      const listed = await this.#opts.slots.list(target.port, signal);
      // without `GET /slots` (--no-slots) every slot is asked; those that held nothing save no tokens
      const candidates = listed
        ? slotsToSave(listed, restored?.port === target.port ? restored.slots : new Set())
        : [...Array(slotCount(target.launch, this.#opts.keyContext.env)).keys()];
      const saved: SavedSlot[] = [];
      for (const slot of candidates) {
        const one = await this.#saveSlot(target, folder, key, slot, signal);
        if (one) saved.push(one);
      }
      // nothing held a prompt: what an earlier stop saved is still what the model had
      if (!saved.length) return;
      const now = this.#now();
      const manifest: KvManifest = {
        version: 1,
        modelId: target.modelId,
        key,
        savedAt: now,
        usedAt: now,
        slots: saved,
      };
      await writeManifest(folder, manifest);
      await this.#keepOnly(folder, manifest);
      this.#entries.set(this.#entryId(folder, key), { folder, manifest, inUse: false });
      const { tokens, bytes } = manifestTotals(manifest);
      this.#stats.saves++;
      this.#stats.savedBytes += bytes;
      this.#log(
        `saved ${target.modelId}: ${slotsText(saved.length)}, ${tokens} tokens, ${formatBytes(bytes)} in ` +
          `${Math.round(performance.now() - started)} ms (engine ${roundMs(sum(saved, (s) => s.saveMs))} ms)`,
      );
      await this.#applyBound();
    } catch (err) {
      this.#stats.saveFailures++;
      this.#log(`saving ${target.modelId} failed: ${errorText(err, signal)}`);
    } finally {
      if (earlier) earlier.inUse = false;
      this.#opts.slots.release(target.port);
    }
  }

  async restore(target: KvCacheTarget, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const folder = this.#folderOf(target.modelId);
    let entry: Entry | undefined;
    try {
      const key = await launchKey(target.modelId, target.launch, this.#opts.keyContext);
      // another key's files were saved by another launch, which this one can never restore
      await this.#dropOtherKeys(folder, key);
      entry = this.#entries.get(this.#entryId(folder, key));
      if (!entry) return;
      entry.inUse = true;
      const slots = slotCount(target.launch, this.#opts.keyContext.env);
      const restored = new Set<number>();
      let tokens = 0, bytes = 0, engineMs = 0;
      try {
        for (const saved of entry.manifest.slots) {
          if (saved.slot >= slots) throw new StoreError(`slot ${saved.slot} is beyond the ${slots} slots`);
          await checkRegularFile(join(folder, saved.file));
          const t = await this.#opts.slots.restore(target.port, saved.slot, saved.file, signal);
          restored.add(saved.slot);
          tokens += t.tokens;
          bytes += t.bytes;
          engineMs += t.ms;
        }
      } finally {
        if (restored.size) this.#restored.set(target.modelId, { port: target.port, slots: restored });
      }
      entry.manifest = { ...entry.manifest, usedAt: this.#now() };
      // the restore worked; a manifest that keeps its old time only ages sooner under the bound
      await writeManifest(folder, entry.manifest).catch((err) =>
        this.#log(`cannot update ${target.modelId}'s manifest: ${(err as Error).message}`)
      );
      this.#stats.restores++;
      this.#stats.restoredTokens += tokens;
      this.#stats.restoredBytes += bytes;
      this.#log(
        `restored ${target.modelId}: ${slotsText(restored.size)}, ${tokens} tokens, ${
          formatBytes(bytes)
        } in ` +
          `${Math.round(performance.now() - started)} ms (engine ${roundMs(engineMs)} ms)`,
      );
    } catch (err) {
      this.#stats.restoreFailures++;
      this.#log(`restoring ${target.modelId} failed, it serves from cold: ${errorText(err, signal)}`);
      // a file the engine refused, or one that is not there, fails the same way next time
      if (
        entry &&
        (err instanceof SlotApiError || err instanceof StoreError || err instanceof Deno.errors.NotFound)
      ) {
        await this.#dropKey(folder, entry.manifest.key);
      }
    } finally {
      if (entry) entry.inUse = false;
      this.#opts.slots.release(target.port);
    }
  }

  async discard(modelId: string): Promise<void> {
    const folder = this.#folderOf(modelId);
    for (const [id, entry] of this.#entries) if (entry.folder === folder) this.#entries.delete(id);
    this.#restored.delete(modelId);
    try {
      await Deno.remove(folder, { recursive: true });
      this.#log(`deleted the saved caches of ${modelId}`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        this.#log(`cannot delete ${folder}: ${(err as Error).message}`);
      }
    }
  }

  summary(modelId: string): KvCacheSummary | undefined {
    const folder = this.#folderOf(modelId);
    let latest: KvManifest | undefined;
    for (const entry of this.#entries.values()) {
      if (entry.folder === folder && (!latest || entry.manifest.savedAt > latest.savedAt)) {
        latest = entry.manifest;
      }
    }
    if (!latest) return undefined;
    return { ...manifestTotals(latest), slots: latest.slots.length, savedAt: latest.savedAt };
  }

  stats(): KvCacheStats {
    return {
      ...this.#stats,
      storedBytes: sum([...this.#entries.values()], (e) => manifestTotals(e.manifest).bytes),
    };
  }

  /** One slot saved under a temporary name and renamed into place; undefined when it held nothing. */
  async #saveSlot(
    target: KvCacheTarget,
    folder: string,
    key: string,
    slot: number,
    signal: AbortSignal,
  ): Promise<SavedSlot | undefined> {
    const temp = tempSlotFileName(key, slot, nonce());
    try {
      const t = await this.#opts.slots.save(target.port, slot, temp, signal);
      if (t.tokens === 0) return undefined;
      const file = slotFileName(key, slot);
      await Deno.rename(join(folder, temp), join(folder, file));
      return { slot, file, tokens: t.tokens, bytes: t.bytes, saveMs: t.ms };
    } catch (err) {
      // one slot the engine could not save (a multimodal prompt, say) leaves the others to save
      if (!(err instanceof SlotApiError)) throw err;
      this.#log(`saving ${target.modelId} slot ${slot} failed: ${err.message}`);
      return undefined;
    } finally {
      await removeQuietly(join(folder, temp));
    }
  }

  /** Deletes what the manifest does not name: other keys, slots no longer saved, anything else put there. */
  async #keepOnly(folder: string, manifest: KvManifest): Promise<void> {
    const keep = new Set([manifestFileName(manifest.key), ...manifest.slots.map((s) => s.file)]);
    for (const file of await listDir(folder)) {
      if (!keep.has(file.name)) await removeQuietly(join(folder, file.name));
      const parsed = parseStoreFile(file.name);
      if (parsed && parsed.key !== manifest.key) this.#entries.delete(this.#entryId(folder, parsed.key));
    }
  }

  async #dropOtherKeys(folder: string, key: string): Promise<void> {
    const stale = new Set<string>();
    for (const file of await listDir(folder)) {
      const parsed = parseStoreFile(file.name);
      if (parsed && parsed.key !== key) stale.add(parsed.key);
    }
    for (const other of stale) await this.#dropKey(folder, other);
  }

  /** Deletes one key's files, its manifest first: a half-deleted key is never listed nor restored. */
  async #dropKey(folder: string, key: string): Promise<void> {
    this.#entries.delete(this.#entryId(folder, key));
    await removeQuietly(join(folder, manifestFileName(key)));
    for (const file of await listDir(folder)) {
      if (parseStoreFile(file.name)?.key === key) await removeQuietly(join(folder, file.name));
    }
  }

  /** Deletes the least recently used caches until the rest fit in `--swap-kv-cache-max`. */
  async #applyBound(): Promise<void> {
    const caches = [...this.#entries].map(([id, e]) => ({
      id,
      bytes: manifestTotals(e.manifest).bytes,
      usedAt: e.manifest.usedAt,
      inUse: e.inUse,
    }));
    for (const victim of overBudget(caches, this.#opts.maxBytes)) {
      const entry = this.#entries.get(victim.id)!;
      await this.#dropKey(entry.folder, entry.manifest.key);
      this.#stats.evictions++;
      this.#log(
        `deleted the saved cache of ${entry.manifest.modelId} (${
          formatBytes(victim.bytes)
        }, least recently used) ` +
          `to stay within --swap-kv-cache-max ${formatBytes(this.#opts.maxBytes)}`,
      );
    }
  }

  #folderOf(modelId: string): string {
    return join(this.#opts.root, modelFolderName(modelId));
  }

  #entryId(folder: string, key: string): string {
    return `${folder.slice(this.#opts.root.length + 1)}/${key}`;
  }

  #log(line: string): void {
    this.#opts.log(`kv cache: ${line}`);
  }
}

/** A saved cache the store cannot use as it is. */
class StoreError extends Error {
  override name = "StoreError";
}

async function readManifest(folder: string, key: string): Promise<KvManifest | undefined> {
  const path = join(folder, manifestFileName(key));
  try {
    await checkRegularFile(path);
    return parseManifest(await Deno.readTextFile(path), key);
  } catch {
    return undefined;
  }
}

/** Writes the manifest under a temporary name, then renames it into place. */
async function writeManifest(folder: string, manifest: KvManifest): Promise<void> {
  const temp = join(folder, tempManifestFileName(manifest.key, nonce()));
  try {
    await Deno.writeTextFile(temp, JSON.stringify(manifest));
    await Deno.rename(temp, join(folder, manifestFileName(manifest.key)));
  } finally {
    await removeQuietly(temp);
  }
}

/** A plain file, not a link: the engine would follow a link out of the folder. */
async function checkRegularFile(path: string): Promise<void> {
  const info = await Deno.lstat(path);
  if (!info.isFile) throw new StoreError(`${path} is not a plain file`);
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch { /* already gone */ }
}

function nonce(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

function sum<T>(items: readonly T[], of: (item: T) => number): number {
  return items.reduce((n, item) => n + of(item), 0);
}

function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function slotsText(n: number): string {
  return n === 1 ? "1 slot" : `${n} slots`;
}

function errorText(err: unknown, signal: AbortSignal): string {
  return signal.aborted ? "it took too long" : (err as Error).message;
}
