/**
 * Ollama's model names onto Switchyard's ids. Ollama clients send `name:tag` (`alpha:latest`), Hub
 * models as `hf.co/owner/repo:Q4_K_M`, and names in any case (Ollama's are case-insensitive).
 * Switchyard's ids and aliases work as they are; the Ollama forms find a model only when exactly one
 * fits, and a name that fits several is an error listing them, never a guess.
 */

/** What a name is matched against: a model's id and the aliases it answers to. */
export interface NamedModel {
  readonly id: string;
  /** the id and every alias */
  readonly names: readonly string[];
}

export type NameMatch =
  | { readonly kind: "found"; readonly id: string }
  | { readonly kind: "ambiguous"; readonly candidates: readonly string[] }
  | { readonly kind: "missing" };

/** The hosts Ollama pulls Hugging Face models from: `hf.co/owner/repo:Q4_K_M` is `owner/repo:Q4_K_M`. */
const HUB_HOSTS = /^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i;

/**
 * The model `name` means. Tried in order, the first step that fits any model decides: the name as
 * it is; without `hf.co/` and `:latest`; the same without regard to case; a bare `owner/repo` (or
 * `name`) as any of its tags.
 *
 * @example
 * ```ts
 * const models = [{ id: "alpha", names: ["alpha"] }, { id: "o/r:Q4_K_M", names: ["o/r:Q4_K_M"] }];
 * resolveOllamaName("alpha:latest", models); // { kind: "found", id: "alpha" }
 * resolveOllamaName("hf.co/o/r:q4_k_m", models); // { kind: "found", id: "o/r:Q4_K_M" }
 * ```
 */
export function resolveOllamaName(name: string, models: readonly NamedModel[]): NameMatch {
  const exact = models.filter((m) => m.names.includes(name));
  if (exact.length > 0) return matchOf(exact);
  // Ollama's default tag: `alpha:latest` is `alpha`
  const bare = name.replace(HUB_HOSTS, "").replace(/:latest$/i, "");
  const lower = bare.toLowerCase();
  const steps: ((m: NamedModel) => boolean)[] = [
    (m) => m.names.includes(bare),
    (m) => m.names.some((n) => n.toLowerCase() === lower),
    // an untagged name stands for its tags: `owner/repo` is `owner/repo:Q4_K_M` when that is the only one
    (m) => !bare.includes(":") && m.names.some((n) => n.toLowerCase().startsWith(`${lower}:`)),
  ];
  for (const fits of steps) {
    const found = models.filter(fits);
    if (found.length > 0) return matchOf(found);
  }
  return { kind: "missing" };
}

function matchOf(found: readonly NamedModel[]): NameMatch {
  const ids = [...new Set(found.map((m) => m.id))].sort();
  return ids.length === 1 ? { kind: "found", id: ids[0] } : { kind: "ambiguous", candidates: ids };
}
