import { useEffect, useRef, useState } from "preact/hooks";
import { person } from "../agents";
import type { StreamStatus } from "../api/events";
import type { RunState, SessionView } from "../state/session";
import { useSession } from "../state/use-session";
import { ChatList } from "./chat";
import { Composer } from "./composer";
import { useApi } from "./context";
import { cls, sessionTitle } from "./format";
import { StopIcon } from "./icons";
import { link } from "./router";
import { toastError } from "./toast";
import { Workspace } from "./workspace";

const tabs = new Map<string, string>();
const SPLIT_KEY = "mgx.split";

export function SessionScreen({ id, onGone }: { id: string; onGone: (id: string) => void }) {
  const api = useApi();
  const s = useSession(api, id);
  const [tab, setTabState] = useState(() => tabs.get(id) ?? "preview");
  const [focus, setFocus] = useState<{ panel: string; path: string; nonce: number } | null>(null);
  const [cancelling, setCancelling] = useState(false);

  useEffect(() => setTabState(tabs.get(id) ?? "preview"), [id]);
  useEffect(() => {
    if (s.gone) onGone(id);
  }, [s.gone, id, onGone]);
  const setTab = (t: string) => {
    tabs.set(id, t);
    setTabState(t);
  };

  if (s.gone) {
    return (
      <div class="center-note">
        <h2>This session no longer exists</h2>
        <p class="muted">It was deleted, perhaps in another tab.</p>
        <a class="btn primary" {...link({ page: "home" })}>
          Start a new session
        </a>
      </div>
    );
  }

  // Until the log has been replayed, the stored history stands in for it.
  const items = s.view.lastSeq > 0 || !s.history ? s.view.items : s.history;
  const run = s.view.run;
  const waiting = run?.status === "waiting";
  const asker = waiting ? lastAsker(s.view) : "";

  const cancel = async () => {
    setCancelling(true);
    try {
      await s.cancel();
    } catch (err) {
      toastError(err, "Could not cancel the run");
    } finally {
      setCancelling(false);
    }
  };

  return (
    <Split>
      <section class="chat-col" aria-label="Chat">
        <header class="chat-head">
          <div class="chat-title">
            <h2 title={sessionTitle(s.session?.title)}>{s.session ? sessionTitle(s.session.title) : "Loading…"}</h2>
            <StreamBadge status={s.stream} />
          </div>
          <div class="chat-head-right">
            {s.view.usage && s.view.usage.costUsd > 0 && (
              <span class="usage" title={`${s.view.usage.inputTokens} input + ${s.view.usage.outputTokens} output tokens`}>
                ${s.view.usage.costUsd.toFixed(4)}
              </span>
            )}
            <RunPill run={run} />
            {run?.active && (
              <button class="btn danger-outline small" onClick={() => void cancel()} disabled={cancelling}>
                <StopIcon size={13} /> {cancelling ? "Cancelling…" : "Cancel run"}
              </button>
            )}
          </div>
        </header>
        {s.error && <div class="banner error">{s.error}</div>}
        <ChatList
          sessionId={id}
          items={items}
          onOpenFile={(path) => {
            setTab("files");
            setFocus({ panel: "files", path, nonce: Date.now() });
          }}
          onOpenArtifact={(artifact) => {
            setTab("artifacts");
            setFocus({ panel: "artifacts", path: artifact, nonce: Date.now() });
          }}
          empty={<div class="chat-empty muted">No messages yet. Ask the team for something below.</div>}
        />
        <div class="composer-wrap">
          <Composer
            key={id}
            autofocus
            label={waiting ? `Answer ${asker}` : "Message the team"}
            placeholder={
              waiting ? `Answer ${asker}'s question…` : run?.active ? "Add to what the team is working on…" : "Ask the team for something…"
            }
            onSubmit={async (text) => {
              try {
                await s.send(text);
                return true;
              } catch (err) {
                toastError(err, "Not sent");
                return false;
              }
            }}
            hint={
              waiting ? (
                <span class="ask-hint">{asker} is waiting for your answer</span>
              ) : run?.active ? (
                "Mike reads it at the team's next step · Enter to send"
              ) : (
                "Enter to send · Shift+Enter for a new line"
              )
            }
          />
        </div>
      </section>
      <Workspace sessionId={id} view={s.view} tab={tab} onTab={setTab} focus={focus} onFilesChanged={s.touchFiles} />
    </Split>
  );
}

function lastAsker(view: SessionView): string {
  for (let i = view.items.length - 1; i >= 0; i--) {
    const it = view.items[i]!;
    if (it.kind === "message" && it.question) return person(it.agent || it.sender).name;
  }
  return "Mike";
}

const RUN_LABEL: Record<string, string> = {
  queued: "Queued",
  running: "Working",
  waiting: "Waiting for you",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
  stopped: "Stopped",
};

function RunPill({ run }: { run: RunState | null }) {
  if (!run) return null;
  return (
    <span class={cls("pill", `run-${run.status}`)} data-run-status={run.status}>
      {run.active && run.status !== "waiting" && <span class="spinner" />}
      {RUN_LABEL[run.status] ?? run.status}
    </span>
  );
}

function StreamBadge({ status }: { status: StreamStatus }) {
  const label =
    status === "live" ? "Live" : status === "reconnecting" ? "Reconnecting…" : status === "connecting" ? "Connecting…" : status === "signed-out" ? "Signed out" : "";
  if (!label) return null;
  return (
    <span class={cls("stream", `stream-${status}`)} data-stream={status} title="Event stream">
      <span class="stream-dot" />
      {label}
    </span>
  );
}

/** Chat and workspace side by side, with a divider that drags (or moves with the arrow keys). */
function Split({ children }: { children: [preact.VNode, preact.VNode] }) {
  const root = useRef<HTMLDivElement>(null);
  const [pct, setPct] = useState(() => Number(localStorage.getItem(SPLIT_KEY)) || 44);
  useEffect(() => {
    root.current?.style.setProperty("--chat-w", `${pct}%`);
    localStorage.setItem(SPLIT_KEY, String(pct));
  }, [pct]);
  const clamp = (v: number) => Math.max(28, Math.min(72, v));
  const drag = (e: PointerEvent) => {
    const el = root.current;
    if (!el) return;
    e.preventDefault();
    const box = el.getBoundingClientRect();
    const move = (m: PointerEvent) => setPct(clamp(((m.clientX - box.left) / box.width) * 100));
    const up = () => {
      removeEventListener("pointermove", move);
      removeEventListener("pointerup", up);
      el.classList.remove("dragging");
    };
    el.classList.add("dragging");
    addEventListener("pointermove", move);
    addEventListener("pointerup", up);
  };
  return (
    <div class="screen" ref={root}>
      {children[0]}
      <div
        class="divider"
        role="separator"
        aria-orientation="vertical"
        aria-valuenow={Math.round(pct)}
        aria-valuemin={28}
        aria-valuemax={72}
        aria-label="Resize chat and workspace"
        tabIndex={0}
        onPointerDown={drag}
        onKeyDown={(e) => {
          if (e.key === "ArrowLeft") setPct((p) => clamp(p - 3));
          if (e.key === "ArrowRight") setPct((p) => clamp(p + 3));
        }}
      />
      {children[1]}
    </div>
  );
}
