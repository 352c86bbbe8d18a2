import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { person, speaker } from "../agents";
import { useArtifactURL } from "../state/artifact-urls";
import type { ArtifactItem, ChatItem, FilesItem, MessageItem, NoteItem, ToolItem } from "../state/session";
import { Avatar } from "./avatar";
import { clockTime, cls } from "./format";
import { useApi } from "./context";
import { AlertIcon, CheckIcon, FileIcon, ImageIcon, InfoIcon, QuestionIcon, ToolIcon, XIcon } from "./icons";
import { Markdown } from "./markdown";

interface Props {
  sessionId: string;
  items: ChatItem[];
  /** Open a file in the workspace's file viewer. */
  onOpenFile: (path: string) => void;
  /** Show an artifact in the workspace's artifacts panel. */
  onOpenArtifact: (id: string) => void;
  empty?: preact.ComponentChildren;
}

/** The conversation, kept scrolled to the newest line unless the reader scrolled up. */
export function ChatList({ sessionId, items, onOpenFile, onOpenArtifact, empty }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const [behind, setBehind] = useState(false);

  const last = items[items.length - 1];
  const tail = last
    ? `${items.length}:${last.key}:${last.kind === "message" ? last.content.length : last.kind === "tool" ? `${last.args.length}:${last.live.length}:${last.output?.length ?? -1}` : 0}`
    : "";

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (pinned.current) el.scrollTop = el.scrollHeight;
    else setBehind(true);
  }, [tail]);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const onScroll = () => {
      pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
      if (pinned.current) setBehind(false);
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, []);

  // A message with no text is not shown: a retried turn that ended with tool calls only leaves one.
  const shown = items.filter((it) => it.kind !== "message" || it.content.trim() !== "");

  return (
    <div class="chat-scroll" ref={scroller}>
      <div class="chat" role="log" aria-live="polite" aria-relevant="additions">
        {shown.length === 0 && empty}
        {shown.map((it, i) => (
          <Item key={it.key} sessionId={sessionId} item={it} continued={continues(shown[i - 1], it)} onOpenFile={onOpenFile} onOpenArtifact={onOpenArtifact} />
        ))}
      </div>
      {behind && (
        <button
          class="jump"
          onClick={() => {
            const el = scroller.current;
            if (el) el.scrollTop = el.scrollHeight;
            pinned.current = true;
            setBehind(false);
          }}
        >
          New activity ↓
        </button>
      )}
    </div>
  );
}

/** An agent's message right after its own lines reads as one turn: no second name and avatar. */
function continues(prev: ChatItem | undefined, it: ChatItem): boolean {
  if (!prev || it.kind !== "message" || it.sender === "user" || prev.kind === "status" || prev.kind === "error" || prev.kind === "artifact") return false;
  if (prev.kind === "message" && (prev.sender === "user" || prev.question)) return false;
  return !!it.agent && prev.agent === it.agent;
}

interface ItemProps {
  sessionId: string;
  item: ChatItem;
  continued: boolean;
  onOpenFile: (p: string) => void;
  onOpenArtifact: (id: string) => void;
}

function Item({ sessionId, item, continued, onOpenFile, onOpenArtifact }: ItemProps) {
  switch (item.kind) {
    case "message":
      return <MessageLine m={item} continued={continued} />;
    case "tool":
      return <ToolLine t={item} onOpenFile={onOpenFile} />;
    case "files":
      return <FilesLine f={item} onOpenFile={onOpenFile} />;
    case "artifact":
      return <ArtifactLine sessionId={sessionId} a={item} onOpen={onOpenArtifact} />;
    default:
      return <NoteLine n={item} />;
  }
}

function MessageLine({ m, continued }: { m: MessageItem; continued: boolean }) {
  if (m.sender === "user") {
    return (
      <div class="msg user" data-key={m.key}>
        <div class="bubble">
          <Markdown text={m.content} />
        </div>
        <time class="msg-time">{clockTime(m.at)}</time>
      </div>
    );
  }
  if (m.sender === "status") return <NoteLine n={{ kind: "status", key: m.key, agent: m.agent, content: m.content, at: m.at, runId: m.runId }} />;
  const who = speaker(m.sender, m.agent);
  const head = !continued || m.question;
  return (
    <div class={cls("msg agent", m.question && "question", !head && "continued")} data-key={m.key} data-agent={who.name}>
      {head ? <Avatar who={who} /> : <span class="avatar-space" />}
      <div class="msg-body">
        {head && (
          <div class="msg-head">
            <span class="msg-name">{who.name}</span>
            {who.role && <span class="msg-role">{who.role}</span>}
            <time class="msg-time">{clockTime(m.at)}</time>
          </div>
        )}
        {m.question && (
          <div class="question-tag">
            <QuestionIcon size={14} /> {who.name} asks you
          </div>
        )}
        <div class={cls("msg-text", m.streaming && "streaming")}>
          <Markdown text={m.content} />
        </div>
      </div>
    </div>
  );
}

/** The argument that says most about a call, for its one-line summary. */
function summary(tool: string, args: string): string {
  let a: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(args);
    if (v && typeof v === "object") a = v as Record<string, unknown>;
  } catch {
    return args.slice(0, 80);
  }
  if (tool === "send_message" && typeof a.to === "string") return `to ${person(a.to).name}`;
  for (const k of ["path", "command", "name", "port", "url", "query", "task_id", "question", "summary"]) {
    const v = a[k];
    if (typeof v === "string" || typeof v === "number") {
      const s = String(v).replace(/\s+/g, " ");
      return s.length > 90 ? `${s.slice(0, 90)}…` : s;
    }
  }
  return "";
}

function pretty(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

/** The last non-empty line of a running call's output, for its one-line summary. */
function lastLine(s: string): string {
  const lines = s.trimEnd().split("\n");
  const l = (lines[lines.length - 1] ?? "").replace(/\s+/g, " ").trim();
  return l.length > 120 ? `${l.slice(0, 120)}…` : l;
}

function ToolLine({ t, onOpenFile }: { t: ToolItem; onOpenFile: (p: string) => void }) {
  const who = person(t.agent);
  const state = t.drafting ? "drafting" : t.output === null ? "running" : t.isError ? "failed" : t.interrupted ? "interrupted" : "done";
  const sum = state === "running" && t.live ? lastLine(t.live) : summary(t.tool, t.args);
  return (
    <div class={cls("tool-wrap", state)} data-key={t.key} data-tool={t.tool}>
    <details class="tool">
      <summary>
        <span class="tool-state" title={state}>
          {state === "running" || state === "drafting" ? <span class="spinner" /> : state === "failed" || state === "interrupted" ? <XIcon size={13} /> : <CheckIcon size={13} />}
        </span>
        <ToolIcon size={13} class="tool-icon" />
        <span class="tool-who" style={{ "--who": who.color }}>
          {who.name}
        </span>
        <span class="tool-name">{t.tool || "tool"}</span>
        <span class={cls("tool-sum", state === "running" && t.live && "live")} data-testid={state === "running" ? "tool-live" : undefined}>
          {state === "drafting" ? `writing… ${sum}` : sum}
        </span>
        <time class="msg-time">{clockTime(t.at)}</time>
      </summary>
      <div class="tool-body">
        {t.args && t.args !== "{}" && (
          <>
            <div class="tool-label">Arguments</div>
            <pre class="code">{pretty(t.args)}</pre>
          </>
        )}
        {t.drafting ? (
          <div class="muted small">{person(t.agent).name} is writing this call…</div>
        ) : t.interrupted ? (
          <div class="muted small">No result: the run ended before this call returned.</div>
        ) : t.control ? null : (
          <>
            <div class="tool-label">{t.isError ? "Error" : t.output === null ? "Output so far" : "Output"}</div>
            {t.output !== null ? (
              <pre class={cls("code", t.isError && "err")}>{t.output || "(no output)"}</pre>
            ) : t.live ? (
              <pre class="code live">{t.live}</pre>
            ) : (
              <div class="muted small">Running…</div>
            )}
          </>
        )}
      </div>
    </details>
    {t.paths.length > 0 && <Paths paths={t.paths} onOpenFile={onOpenFile} />}
    </div>
  );
}

function Paths({ paths, onOpenFile }: { paths: string[]; onOpenFile: (p: string) => void }) {
  return (
    <div class="paths">
      {paths.map((p) => (
        <button key={p} class="path-chip" type="button" title={`Open ${p}`} onClick={() => onOpenFile(p)}>
          <FileIcon size={12} />
          {p}
        </button>
      ))}
    </div>
  );
}

function ArtifactLine({ sessionId, a, onOpen }: { sessionId: string; a: ArtifactItem; onOpen: (id: string) => void }) {
  const who = person(a.agent);
  const image = a.contentType.startsWith("image/");
  return (
    <div class="note artifact" data-key={a.key} data-artifact={a.id}>
      <ImageIcon size={13} />
      <div class="artifact-line">
        <span>
          {a.agent ? `${who.name} made ` : "Made "}
          <button type="button" class="link-btn" onClick={() => onOpen(a.id)} title="Show it in the Artifacts panel">
            {a.name}
          </button>
          {a.source && <span class="muted"> · {a.source}</span>}
        </span>
        {image && <ArtifactThumb sessionId={sessionId} id={a.id} name={a.name} onOpen={() => onOpen(a.id)} />}
      </div>
      <time class="msg-time">{clockTime(a.at)}</time>
    </div>
  );
}

function ArtifactThumb({ sessionId, id, name, onOpen }: { sessionId: string; id: string; name: string; onOpen: () => void }) {
  const { url, error } = useArtifactURL(useApi(), sessionId, id);
  if (error) return <span class="error-text small">{error}</span>;
  if (!url) return <span class="thumb placeholder" aria-busy="true" />;
  return (
    <button type="button" class="thumb" onClick={onOpen} title={`Open ${name}`}>
      <img src={url} alt={name} loading="lazy" />
    </button>
  );
}

function FilesLine({ f, onOpenFile }: { f: FilesItem; onOpenFile: (p: string) => void }) {
  const who = person(f.agent);
  return (
    <div class="note files" data-key={f.key}>
      <FileIcon size={13} />
      <span>{f.agent ? `${who.name} changed` : "Changed"}</span>
      <Paths paths={f.paths} onOpenFile={onOpenFile} />
    </div>
  );
}

function NoteLine({ n }: { n: NoteItem }) {
  return (
    <div class={cls("note", n.kind)} data-key={n.key} role={n.kind === "error" ? "alert" : undefined}>
      {n.kind === "error" ? <AlertIcon size={14} /> : <InfoIcon size={14} />}
      <span class="note-text">{n.content}</span>
      <time class="msg-time">{clockTime(n.at)}</time>
    </div>
  );
}
