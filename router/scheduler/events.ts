/**
 * The feed behind `GET /models/sse`: llama.cpp's event envelope `{model, event, data?}`. Publishing
 * never blocks: a slow subscriber only delays itself.
 */

export type ModelEventType =
  | "snapshot"
  | "model_status"
  | "status_change"
  | "download_progress"
  | "download_finished"
  | "download_failed"
  | "model_remove"
  | "models_reload";

export interface ModelEvent {
  model: string;
  event: ModelEventType;
  data?: Record<string, unknown>;
}

export type Listener = (event: ModelEvent) => void;

export class EventBus {
  #listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  publish(event: ModelEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        console.error("event listener failed:", err);
      }
    }
  }

  get size(): number {
    return this.#listeners.size;
  }
}
