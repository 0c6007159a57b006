/**
 * Reading a Prometheus text page in tests the way Prometheus reads it: samples with their labels
 * parsed, so that a test asks for `switchyard_requests_total{model="alpha",status="200"}` by its
 * labels rather than by the order the page happens to write them in.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample of the page (comment lines skipped); throws on a line that is neither. */
export function parseSamples(page: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of page.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = line.match(SAMPLE);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (m[2] ?? "").matchAll(LABEL)) {
      labels[name] = value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The samples named `name` whose labels include `labels`. */
export function samplesOf(
  page: string | Sample[],
  name: string,
  labels: Record<string, string> = {},
): Sample[] {
  const all = typeof page === "string" ? parseSamples(page) : page;
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample named `name` with exactly these labels (the `le` of a bucket included); undefined if absent. */
export function valueOf(
  page: string | Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samplesOf(page, name, labels).filter((s) =>
    Object.keys(s.labels).length === Object.keys(labels).length
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

/** Every value the page gives the label `label`, over all its samples. */
export function labelValues(page: string | Sample[], label: string): Set<string> {
  const all = typeof page === "string" ? parseSamples(page) : page;
  return new Set(all.flatMap((s) => label in s.labels ? [s.labels[label]] : []));
}
