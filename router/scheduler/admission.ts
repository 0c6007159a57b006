/**
 * Admission decides whether one more model may start now. It is a policy object so a memory-based
 * rule (sum of estimated model sizes against free RAM/VRAM) can replace the count rule later
 * without touching the scheduler.
 */

/** What admission may know about a model that runs, or wants to. */
export interface AdmissionCandidate {
  id: string;
  /** size of the model's files in bytes, when known */
  sizeBytes?: number;
}

export interface Admission {
  /** May `next` start while `running` models hold their places? */
  admits(next: AdmissionCandidate, running: AdmissionCandidate[]): boolean;
  /** Human-readable limit for logs and /props */
  readonly description: string;
}

/** llama.cpp's rule: at most `max` models loading, loaded or sleeping; 0 means no limit. */
export class CountAdmission implements Admission {
  constructor(readonly max: number) {}
  admits(_next: AdmissionCandidate, running: AdmissionCandidate[]): boolean {
    return this.max <= 0 || running.length < this.max;
  }
  get description(): string {
    return this.max <= 0 ? "unlimited" : `at most ${this.max} models`;
  }
}
