/** Small assertions for the UI tests (no assertion library is reachable offline). */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(cond: unknown, message = "assertion failed"): asserts cond {
  if (!cond) throw new AssertionError(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(message ?? `expected ${e}\n     got ${a}`);
}

export function assertIncludes(text: string, part: string) {
  if (!text.includes(part)) {
    throw new AssertionError(`expected ${JSON.stringify(text)}\nto include ${JSON.stringify(part)}`);
  }
}
