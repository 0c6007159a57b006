/**
 * Prometheus text exposition (format 0.0.4), the few operations the gateway's page needs on text it
 * did not write itself: every engine's own page (`llamacpp:*`) gets a `model` label on each sample and
 * is merged with the others family by family, since Prometheus wants all samples of one family
 * together under one HELP and TYPE; and a page can be narrowed to the models an API key may see.
 * Writing metrics is prom-client's job (families.ts); this only re-arranges lines.
 */

/** One metric family: its HELP and TYPE (as the page gave them) and its sample lines. */
export interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: string[];
}

/** Label values escaped as the format asks: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * The families of one page, each sample with `model="<model>"` put first among its labels. A label
 * the page already calls `model` becomes `exported_model`, as Prometheus itself renames a clash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const [family] = relabel("# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0\n", "a");
 * assert.deepEqual(family.samples, ['llamacpp:requests_processing{model="a"} 0']);
 * ```
 */
export function relabel(page: string, model: string): Family[] {
  const label = `model="${escapeLabelValue(model)}"`;
  const families: Family[] = [];
  const byName = new Map<string, Family>();
  const familyOf = (name: string): Family => {
    let family = byName.get(name);
    if (!family) {
      family = { name, samples: [] };
      byName.set(name, family);
      families.push(family);
    }
    return family;
  };
  let current: Family | undefined;
  for (const raw of page.split("\n")) {
    const line = raw.trimEnd();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const meta = line.match(/^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/);
      if (!meta) continue;
      current = familyOf(meta[2]);
      if (meta[1] === "HELP") current.help = meta[3] ?? "";
      else current.type = meta[3] ?? "untyped";
      continue;
    }
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) continue;
    const name = line.slice(0, nameEnd);
    // a histogram's or summary's `_bucket`, `_sum` and `_count` belong to the family declared above them
    const family = current && (name === current.name || name.startsWith(`${current.name}_`))
      ? current
      : familyOf(name);
    family.samples.push(withLabel(line, nameEnd, label));
  }
  return families;
}

function withLabel(line: string, nameEnd: number, label: string): string {
  const name = line.slice(0, nameEnd);
  if (line[nameEnd] !== "{") return `${name}{${label}}${line.slice(nameEnd)}`;
  const rest = line.slice(nameEnd + 1).replace(/(^|,)\s*model=/, "$1exported_model=");
  return rest.startsWith("}") ? `${name}{${label}${rest}` : `${name}{${label},${rest}`;
}

/** Adds `families` to `into`, keyed by name: samples of a family that is there already join it. */
export function mergeFamilies(into: Map<string, Family>, families: readonly Family[]): void {
  for (const family of families) {
    const known = into.get(family.name);
    if (!known) into.set(family.name, { ...family, samples: [...family.samples] });
    else {
      known.help ??= family.help;
      known.type ??= family.type;
      known.samples.push(...family.samples);
    }
  }
}

/** The families as a page: each family's HELP, TYPE and samples, one family after another. */
export function renderFamilies(families: Iterable<Family>): string {
  const lines: string[] = [];
  for (const family of families) {
    if (family.help !== undefined) lines.push(`# HELP ${family.name} ${family.help}`);
    if (family.type !== undefined) lines.push(`# TYPE ${family.name} ${family.type}`);
    lines.push(...family.samples);
  }
  return lines.length ? `${lines.join("\n")}\n` : "";
}

const MODEL_LABEL = /[{,]model="((?:[^"\\]|\\.)*)"/;

/**
 * The page without the samples of models `visible` refuses. Samples without a `model` label (the
 * gateway's totals per state, say) and comment lines stay.
 */
export function keepModels(page: string, visible: (model: string) => boolean): string {
  return page.split("\n").filter((line) => {
    if (line.startsWith("#")) return true;
    const brace = line.indexOf("{");
    if (brace < 0) return true;
    const m = line.slice(brace).match(MODEL_LABEL);
    return !m || visible(unescapeLabelValue(m[1]));
  }).join("\n");
}

function unescapeLabelValue(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}
