import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { MAX_MESSAGE_CHARS } from "../config";
import { cls } from "./format";
import { SendIcon } from "./icons";

interface Props {
  placeholder: string;
  /** Sending is not possible now (the reason is the placeholder or the hint). */
  disabled?: boolean;
  /** Resolves true when the text was taken (the box then empties). */
  onSubmit: (text: string) => Promise<boolean>;
  hint?: ComponentChildren;
  /** Extra buttons next to Send (cancel a run). */
  actions?: ComponentChildren;
  autofocus?: boolean;
  label?: string;
  large?: boolean;
  /** Text to start with (an example the user picked). */
  initial?: string;
}

/** The message box: Enter sends, Shift+Enter breaks the line. */
export function Composer({ placeholder, disabled, onSubmit, hint, actions, autofocus, label, large, initial }: Props) {
  const [text, setText] = useState(initial ?? "");
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, large ? 320 : 220)}px`;
  }, [text, large]);

  const over = text.length > MAX_MESSAGE_CHARS;
  const canSend = !disabled && !busy && text.trim().length > 0 && !over;

  const submit = async () => {
    if (!canSend) return;
    setBusy(true);
    try {
      if (await onSubmit(text.trim())) setText("");
    } finally {
      setBusy(false);
      ref.current?.focus();
    }
  };

  return (
    <form
      class={cls("composer", large && "large", disabled && "disabled")}
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <textarea
        ref={ref}
        rows={large ? 3 : 1}
        value={text}
        placeholder={placeholder}
        aria-label={label ?? placeholder}
        autofocus={autofocus}
        disabled={busy}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      <div class="composer-bar">
        <div class="composer-hint">
          {over ? <span class="over">{text.length} / {MAX_MESSAGE_CHARS} characters</span> : hint}
        </div>
        <div class="composer-actions">
          {actions}
          <button class="btn primary" type="submit" disabled={!canSend} title="Send (Enter)">
            <SendIcon size={15} />
            <span>{busy ? "Sending…" : "Send"}</span>
          </button>
        </div>
      </div>
    </form>
  );
}
