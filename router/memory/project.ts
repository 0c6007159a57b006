/**
 * One model's projection, the way the issue orders the sources: the engine's fitter first, the GGUF
 * estimate where the fitter is missing or fails. The fitter knows nothing of the projector (there is
 * no `--mmproj` in fit-params), so the projector's estimate is added to its answer.
 */
import type { MemoryArgs } from "./args.ts";
import type { Device } from "./devices.ts";
import { fitParamsBin, runFitParams } from "./fit_params.ts";
import { type GgufHeader, readModelHeader } from "./gguf.ts";
import { estimateFromFiles, estimateMmproj, modelFacts } from "./gguf_estimate.ts";
import { type MemoryProjection, sumProjections } from "./projection.ts";

export interface ProjectInput {
  /** the llama-server the model will run on; its fitter is looked for next to it */
  engineBin: string;
  /** the GGUF the engine loads (the first shard of a split model) */
  modelPath: string;
  args: MemoryArgs;
  /** the GPUs the engine sees, for the estimate's placement */
  gpus?: readonly Device[];
  /** the engine child's environment */
  env?: Record<string, string>;
  /** another fitter, or `false` to go straight to the estimate */
  fitParams?: string | false;
  /** why the fitter gave nothing, for the log */
  onFailure?: (reason: string) => void;
}

/** The projection of a model with its draft and projector; throws only when no source can read the model. */
export async function projectModel(input: ProjectInput): Promise<MemoryProjection> {
  const header = await readModelHeader(input.modelPath).catch((e: unknown): GgufHeader | undefined => {
    input.onFailure?.(`${input.modelPath}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  });
  if (input.fitParams !== false) {
    const fit = await runFitParams(
      input.fitParams ?? fitParamsBin(input.engineBin),
      input.modelPath,
      input.args,
      {
        env: input.env,
        hasSwa: hasSwa(header),
        onFailure: input.onFailure,
      },
    );
    if (fit) {
      if (!input.args.mmproj) return fit;
      const mmproj = estimateMmproj(await readModelHeader(input.args.mmproj.path), input.args, input.gpus);
      return sumProjections("fit-params", fit, mmproj);
    }
  }
  return await estimateFromFiles(input.modelPath, input.args, input.gpus);
}

/** Whether the model may have sliding-window layers: an unreadable header cannot rule them out. */
function hasSwa(header: GgufHeader | undefined): boolean {
  try {
    return header ? modelFacts(header).nSwa > 0 : true;
  } catch {
    return true;
  }
}
