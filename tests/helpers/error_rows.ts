/**
 * Tables of bad requests: each row must get its status, the exact OpenAI error shape and a JSON
 * Content-Type. The in-process table and the rows only a real engine can judge both run through here.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { assertErrorBody } from "./openai.ts";
import type { Send } from "./requests.ts";

export interface ErrorRow {
  name: string;
  /** POST when not given */
  method?: string;
  path: string;
  /** a string, bytes or a FormData are sent as they are; anything else as JSON */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
}

/** Sends every row, one after another; returns what went wrong, one line per row that failed. */
export async function errorRowFailures(send: Send, rows: ErrorRow[]): Promise<string[]> {
  const failures: string[] = [];
  for (const row of rows) {
    const method = row.method ?? "POST";
    const raw = row.body === undefined || typeof row.body === "string" || row.body instanceof Uint8Array ||
      row.body instanceof FormData;
    const body = raw ? row.body as BodyInit | undefined : JSON.stringify(row.body);
    const headers = { ...(raw ? {} : { "Content-Type": "application/json" }), ...row.headers };
    try {
      const res = await send(row.path, { method, headers, body });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`body is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
      }
      assertEquals(res.status, row.status, `status (body ${text.slice(0, 200)})`);
      assertErrorBody(parsed, row.status, "body", { exact: true });
      assertMatch(res.headers.get("content-type") ?? "", /application\/json/);
    } catch (err) {
      failures.push(`${row.name} (${method} ${JSON.stringify(row.path)}): ${(err as Error).message}`);
    }
  }
  return failures;
}
