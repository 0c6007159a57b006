/** The Prometheus text operations on engines' pages: relabelling, merging by family, narrowing by model. */
import { assertEquals } from "../helpers/assert.ts";
import {
  escapeLabelValue,
  type Family,
  keepModels,
  mergeFamilies,
  relabel,
  renderFamilies,
} from "../../router/metrics/exposition.ts";

/** llama-server's page, as its `/metrics` writes it (two of its families). */
const LLAMA_PAGE =
  `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 23
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
`;

Deno.test("relabel: every sample gets model first among its labels; HELP and TYPE stay with their family", () => {
  assertEquals(relabel(LLAMA_PAGE, "alpha"), [
    {
      name: "llamacpp:prompt_tokens_total",
      help: "Number of prompt tokens processed, excluding cached tokens",
      type: "counter",
      samples: ['llamacpp:prompt_tokens_total{model="alpha"} 23'],
    },
    {
      name: "llamacpp:requests_processing",
      help: "Number of requests processing",
      type: "gauge",
      samples: ['llamacpp:requests_processing{model="alpha"} 0'],
    },
  ]);
});

Deno.test("relabel: labels kept, a histogram's series in its family, a clashing model label renamed, timestamps kept", () => {
  const page = [
    "# TYPE lat_seconds histogram",
    'lat_seconds_bucket{le="0.1"} 1',
    'lat_seconds_bucket{le="+Inf"} 2',
    "lat_seconds_sum 0.3",
    "lat_seconds_count 2",
    'other{model="inner",slot="0"} 5 1700000000000',
    "# a comment that is neither HELP nor TYPE",
    "",
  ].join("\n");
  const families = relabel(page, "m");
  assertEquals(families.map((f) => [f.name, f.type, f.samples.length]), [
    ["lat_seconds", "histogram", 4],
    ["other", undefined, 1],
  ]);
  assertEquals(families[0].samples[0], 'lat_seconds_bucket{model="m",le="0.1"} 1');
  assertEquals(families[0].samples[2], 'lat_seconds_sum{model="m"} 0.3');
  assertEquals(families[1].samples, ['other{model="m",exported_model="inner",slot="0"} 5 1700000000000']);
});

Deno.test("label values are escaped: backslash, quote, line feed", () => {
  assertEquals(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assertEquals(relabel("x 1", 'we"ird')[0].samples, ['x{model="we\\"ird"} 1']);
});

Deno.test("mergeFamilies and renderFamilies: one HELP and TYPE per family, every engine's samples under it", () => {
  const merged = new Map<string, Family>();
  mergeFamilies(merged, relabel(LLAMA_PAGE, "alpha"));
  mergeFamilies(merged, relabel(LLAMA_PAGE, "beta"));
  assertEquals(
    renderFamilies(merged.values()),
    `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total{model="alpha"} 23
llamacpp:prompt_tokens_total{model="beta"} 23
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing{model="alpha"} 0
llamacpp:requests_processing{model="beta"} 0
`,
  );
  assertEquals(renderFamilies([]), "");
});

Deno.test("keepModels: drops the samples of models not visible, keeps those without a model and every comment", () => {
  const page = [
    "# HELP switchyard_requests_total Requests",
    "# TYPE switchyard_requests_total counter",
    'switchyard_requests_total{model="alpha",status="200"} 3',
    'switchyard_requests_total{endpoint="/x",model="beta"} 1',
    'switchyard_models{state="loaded"} 2',
    'x{exported_model="beta",model="alpha"} 1',
    "plain 1",
  ].join("\n");
  assertEquals(
    keepModels(page, (m) => m === "alpha").split("\n"),
    [
      "# HELP switchyard_requests_total Requests",
      "# TYPE switchyard_requests_total counter",
      'switchyard_requests_total{model="alpha",status="200"} 3',
      'switchyard_models{state="loaded"} 2',
      'x{exported_model="beta",model="alpha"} 1',
      "plain 1",
    ],
  );
  assertEquals(
    keepModels('y{model="a\\"b"} 1', (m) => m === 'a"b'),
    'y{model="a\\"b"} 1',
    "escapes read back",
  );
});
