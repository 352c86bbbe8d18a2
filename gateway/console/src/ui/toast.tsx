// Transient notices: failed actions show the API's detail here.
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api/http";
import { AlertIcon, XIcon } from "./icons";

interface Toast {
  id: number;
  text: string;
}

let next = 1;
const listeners = new Set<(t: Toast[]) => void>();
let toasts: Toast[] = [];

function set(t: Toast[]) {
  toasts = t;
  for (const l of listeners) l(toasts);
}

export function toast(text: string): void {
  const t = { id: next++, text };
  set([...toasts.slice(-3), t]);
  setTimeout(() => set(toasts.filter((x) => x.id !== t.id)), 8000);
}

/** Shows an error as a person should read it: the server's detail, or a plain sentence. */
export function toastError(err: unknown, what?: string): void {
  const detail = err instanceof ApiError ? err.message : err instanceof Error ? err.message : String(err);
  toast(what ? `${what}: ${detail}` : detail);
}

export function Toasts() {
  const [list, setList] = useState(toasts);
  useEffect(() => {
    listeners.add(setList);
    return () => void listeners.delete(setList);
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div class="toast" key={t.id}>
          <AlertIcon size={16} />
          <span>{t.text}</span>
          <button class="icon-btn" aria-label="Dismiss" onClick={() => set(toasts.filter((x) => x.id !== t.id))}>
            <XIcon size={14} />
          </button>
        </div>
      ))}
    </div>
  );
}
