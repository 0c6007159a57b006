// @ts-check
/// <reference lib="dom" />
/** The API key dialog and a yes/no confirmation, both native <dialog>s (focus trap and Esc for free). */
import { getApiKey, setApiKey } from "./api.js";
import { byId } from "./dom.js";

/**
 * Opens the key dialog. Resolves true when a key was saved, false on cancel.
 * @param {string} [reason] why it opened: "" for a first request, else the gateway's message
 * @returns {Promise<boolean>}
 */
export function askApiKey(reason = "") {
  const dialog = byId("key-dialog", HTMLDialogElement);
  const input = byId("kd-input", HTMLInputElement);
  const show = byId("kd-show", HTMLButtonElement);
  const text = byId("kd-reason");
  const forget = byId("kd-forget", HTMLButtonElement);
  text.textContent = reason === "manual"
    ? "Set the key this browser sends to the gateway."
    : reason
    ? `The gateway refused the key (${reason}). Enter the right one.`
    : "This gateway needs an API key. Enter it to continue.";
  input.value = reason === "manual" ? getApiKey() : "";
  input.type = "password";
  show.setAttribute("aria-pressed", "false");
  show.textContent = "Show";
  forget.hidden = !getApiKey();
  show.onclick = () => {
    const visible = input.type === "password";
    input.type = visible ? "text" : "password";
    show.setAttribute("aria-pressed", String(visible));
    show.textContent = visible ? "Hide" : "Show";
  };
  return new Promise((resolve) => {
    byId("kd-cancel").onclick = () => dialog.close("cancel");
    forget.onclick = () => {
      setApiKey("");
      dialog.close("forget");
    };
    dialog.addEventListener("close", () => {
      const key = input.value.trim();
      if (dialog.returnValue === "save" && key) {
        setApiKey(key);
        resolve(true);
      } else {
        resolve(false);
      }
    }, { once: true });
    dialog.returnValue = "";
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

/**
 * Asks a yes/no question; resolves true when confirmed. Cancel has the focus, so Enter is safe.
 * @param {{title: string, text: string, confirm: string}} q
 * @returns {Promise<boolean>}
 */
export function confirmDialog({ title, text, confirm }) {
  const dialog = byId("confirm-dialog", HTMLDialogElement);
  byId("cd-title").textContent = title;
  byId("cd-text").textContent = text;
  byId("cd-ok").textContent = confirm;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
