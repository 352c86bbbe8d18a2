// What a session looks like to the console, folded from its event log. The log is complete and
// ordered (sequence per session), so replaying it from the start rebuilds everything a person saw
// live — chat, tool calls, plan, run state — and resuming after the last sequence continues it.
// Everything here is pure: the same events give the same view, which is what the tests pin down.
import type { ApiEvent, Message, Plan as ApiPlan, Run } from "../api/types";

export interface MessageItem {
  kind: "message";
  key: string;
  id: string;
  /** "user", "mike", "agent" or "status". */
  sender: string;
  agent: string;
  content: string;
  /** Tokens are still arriving; the final event will replace the text. */
  streaming: boolean;
  /** The agent asked the user something (ask_human). */
  question: boolean;
  at: string;
  runId: string;
  /**
   * Shown from the API's answer before its event arrived (the user's own message). Until then it
   * stays below every line the log adds: a message sent while the log is still being replayed (just
   * after a page load, or resuming after a drop) comes after everything in that replay, as a full
   * replay would show it.
   */
  pending?: boolean;
}

export interface ToolItem {
  kind: "tool";
  key: string;
  callId: string;
  runId: string;
  tool: string;
  agent: string;
  /** The call's arguments, as JSON text (while drafting, what the model has written so far). */
  args: string;
  /** The model is still writing the arguments (tool_call_delta); the call has not started. */
  drafting: boolean;
  /** The tool's output; null while it runs. */
  output: string | null;
  /** Output streamed while the call runs (tool_output), its tail when long; the result replaces it. */
  live: string;
  isError: boolean;
  /**
   * The call steers the team (plan, delegation, replies) and has no output of its own: its effect
   * is the plan, the status line or the message that follows.
   */
  control: boolean;
  /** The run ended before the call returned. */
  interrupted: boolean;
  /** Files the call changed (its file_change event). */
  paths: string[];
  at: string;
}

export interface NoteItem {
  kind: "status" | "error";
  key: string;
  agent: string;
  content: string;
  at: string;
  runId: string;
}

/** A file_change that follows no tool call of the same agent. */
export interface FilesItem {
  kind: "files";
  key: string;
  agent: string;
  paths: string[];
  at: string;
}

/** A file a tool made for the user to see (a preview screenshot, a chart). */
export interface ArtifactRef {
  id: string;
  name: string;
  contentType: string;
  /** What it shows ("port 3000 /"), when known. */
  source: string;
  width: number;
  height: number;
  agent: string;
  tool: string;
  callId: string;
  runId: string;
  at: string;
}

export interface ArtifactItem extends ArtifactRef {
  kind: "artifact";
  key: string;
}

/** A workspace checkpoint announced by a `checkpoint` event (after a step that changed files). */
export interface CheckpointRef {
  id: string;
  parentId: string;
  filesChanged: number;
  /** "step", "manual" or "before_restore". */
  kind: string;
  agent: string;
  tool: string;
  callId: string;
  runId: string;
  at: string;
}

export type ChatItem = MessageItem | ToolItem | NoteItem | FilesItem | ArtifactItem;

export interface Task {
  id: string;
  title: string;
  assignee: string;
  /** "todo", "in_progress", "done", "failed", … as the lead sets it. */
  status: string;
  note: string;
  dependsOn: string[];
}

export interface Plan {
  tasks: Task[];
  finished: boolean;
  runId: string;
}

export interface RunState {
  id: string;
  /** "queued", "running", "waiting", "completed", "failed", "cancelled", "stopped". */
  status: string;
  /** The run holds the session (queued, running or waiting for the user). */
  active: boolean;
  /** The question it waits on. */
  question: string;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface SessionView {
  /** The last sequence applied: a reconnect resumes after it. */
  lastSeq: number;
  items: ChatItem[];
  plan: Plan | null;
  run: RunState | null;
  /** The session's total usage, from the latest usage event. */
  usage: Usage | null;
  /** version counts file_change events; changed holds the paths of the latest one. */
  files: { version: number; changed: string[] };
  /** Bumped by tool calls that may start or stop servers and previews. */
  workspaceVersion: number;
  /** Artifacts announced by events, oldest first. */
  artifacts: ArtifactRef[];
  /** Checkpoints announced by events, oldest first (the REST list has them all, with their messages). */
  checkpoints: CheckpointRef[];
}

export function emptyView(): SessionView {
  return { lastSeq: 0, items: [], plan: null, run: null, usage: null, files: { version: 0, changed: [] }, workspaceVersion: 0, artifacts: [], checkpoints: [] };
}

/** How much of a running call's streamed output is kept: its tail, the part a person watches. */
export const MAX_LIVE_OUTPUT = 64 * 1024;

const ACTIVE = new Set(["queued", "started", "running", "waiting"]);

/** Tools the workflow handles itself: no tool_result follows their call. */
const CONTROL_TOOLS = new Set(["plan_append", "plan_update", "plan_finish", "send_message", "ask_human", "reply_to_human", "end"]);

/**
 * Control calls whose whole effect is a chat message of their own (the reply, the question): a
 * line for the call would say the same thing twice.
 */
const SHOWN_AS_MESSAGE = new Set(["reply_to_human", "ask_human"]);

/** Tools after which the processes and previews are worth reloading. */
const WORKSPACE_TOOLS = new Set(["process_start", "process_stop", "process_signal", "preview_url", "sandbox_shell"]);

/**
 * Applies events in sequence order. Events at or below lastSeq were applied already (a replay that
 * overlaps) and change nothing; an event without a sequence is applied as it comes.
 */
export function applyEvents(view: SessionView, events: readonly ApiEvent[]): SessionView {
  const next: SessionView = { ...view, items: view.items.slice() };
  const index = new Map<string, number>();
  next.items.forEach((it, i) => index.set(it.key, i));
  /** Where the lines the log made end: below them only pending messages of the user. */
  const logEnd = () => {
    let end = next.items.length;
    while (end > 0 && isPending(next.items[end - 1]!)) end--;
    return end;
  };
  const put = (item: ChatItem) => {
    const at = index.get(item.key);
    if (at !== undefined) {
      next.items[at] = item;
      return;
    }
    // A new line goes above the user's messages still waiting for their events (see pending).
    const end = logEnd();
    if (end === next.items.length) {
      index.set(item.key, next.items.length);
      next.items.push(item);
      return;
    }
    next.items.splice(end, 0, item);
    next.items.forEach((it, i) => index.set(it.key, i));
  };
  const get = (key: string) => {
    const at = index.get(key);
    return at === undefined ? undefined : next.items[at];
  };
  /** Puts item where the line under `from` was (a draft becoming its call), keeping its place. */
  const replace = (from: string, item: ChatItem) => {
    const at = index.get(from);
    if (at === undefined || index.has(item.key)) return put(item);
    index.delete(from);
    index.set(item.key, at);
    next.items[at] = item;
  };
  const remove = (key: string) => {
    const at = index.get(key);
    if (at === undefined) return;
    next.items.splice(at, 1);
    index.clear();
    next.items.forEach((it, i) => index.set(it.key, i));
  };

  for (const ev of events) {
    const seq = ev.sequence ?? 0;
    if (seq > 0) {
      if (seq <= next.lastSeq) continue;
      next.lastSeq = seq;
    }
    const type = ev.type ?? "";
    const data = ev.data ?? {};
    const agent = (ev.agent || ev.invoker || "").toLowerCase();
    const at = ev.timestamp ?? "";
    const runId = ev.run_id ?? "";
    const seqKey = seq > 0 ? `#${seq}` : `@${next.items.length}`;

    switch (type) {
      case "message":
      case "token": {
        if (!ev.message_id) break;
        const key = `m:${ev.message_id}`;
        const prev = get(key);
        const old = prev?.kind === "message" ? prev : undefined;
        // A retried turn takes back what its failed attempt streamed: the text is replaced, and the
        // message keeps streaming until the retry's final message settles it.
        const reset = type === "token" && data.reset === true;
        const final = !reset && (type === "message" || ev.final === true);
        if (old && !old.streaming && !final) break; // a late token after the final text
        put({
          kind: "message",
          key,
          id: ev.message_id,
          sender: (ev.sender || old?.sender || "agent").toLowerCase(),
          agent: agent || old?.agent || "",
          content: final || reset ? (ev.content ?? "") : (old?.content ?? "") + (ev.content ?? ""),
          streaming: !final,
          question: old?.question === true || data.question === true,
          at: old?.at || at,
          runId: runId || old?.runId || "",
        });
        break;
      }
      case "tool_call_delta": {
        // The arguments of a call the model is writing, in pieces under the call's message id; the
        // tool_call with that id carries them whole. A retried turn takes its pieces back (reset).
        if (!ev.message_id) break;
        const key = draftKey(ev.message_id);
        if (data.reset === true) {
          remove(key);
          break;
        }
        const old = get(key);
        const tool = ev.tool || (old?.kind === "tool" ? old.tool : "");
        if (SHOWN_AS_MESSAGE.has(tool)) break;
        put({
          kind: "tool",
          key,
          callId: "",
          runId,
          tool,
          agent: agent || (old?.kind === "tool" ? old.agent : ""),
          args: (old?.kind === "tool" ? old.args : "") + (ev.content ?? ""),
          drafting: true,
          output: null,
          live: "",
          isError: false,
          control: CONTROL_TOOLS.has(tool),
          interrupted: false,
          paths: [],
          at: old?.at || at,
        });
        break;
      }
      case "tool_call": {
        const tool = ev.tool ?? "";
        const draft = ev.message_id ? draftKey(ev.message_id) : "";
        if (SHOWN_AS_MESSAGE.has(tool)) {
          if (draft) remove(draft);
          break;
        }
        const callId = str(data.call_id);
        const key = toolKey(runId, callId, ev.message_id, seqKey);
        const old = get(key);
        const control = CONTROL_TOOLS.has(tool);
        const item: ToolItem = {
          kind: "tool",
          key,
          callId,
          runId,
          tool,
          agent,
          args: ev.content || (data.arguments !== undefined ? JSON.stringify(data.arguments) : ""),
          drafting: false,
          output: old?.kind === "tool" ? old.output : control ? "" : null,
          live: old?.kind === "tool" ? old.live : "",
          isError: old?.kind === "tool" ? old.isError : false,
          control,
          interrupted: false,
          paths: old?.kind === "tool" ? old.paths : [],
          at: (draft && get(draft)?.at) || at,
        };
        if (draft && draft !== key) replace(draft, item);
        else put(item);
        if (WORKSPACE_TOOLS.has(ev.tool ?? "")) next.workspaceVersion++;
        break;
      }
      case "tool_output": {
        const callId = str(data.call_id);
        const key = toolKey(runId, callId, undefined, seqKey);
        const old = get(key);
        if (old?.kind === "tool" && old.output !== null) break; // the result has it all
        const base: ToolItem =
          old?.kind === "tool"
            ? old
            : { ...blankTool(key, callId, runId, ev.tool ?? "", agent, at) };
        put({ ...base, live: tail(base.live + (ev.content ?? ""), MAX_LIVE_OUTPUT) });
        break;
      }
      case "artifact": {
        const id = str(data.artifact_id);
        if (!id) break;
        const ref: ArtifactRef = {
          id,
          name: str(data.name) || ev.content || "artifact",
          contentType: str(data.content_type),
          source: str(data.source),
          width: num(data.width),
          height: num(data.height),
          agent,
          tool: ev.tool ?? "",
          callId: str(data.call_id),
          runId,
          at,
        };
        if (!next.artifacts.some((a) => a.id === id)) next.artifacts = [...next.artifacts, ref];
        put({ kind: "artifact", key: `a:${id}`, ...ref });
        break;
      }
      case "checkpoint": {
        // No chat line: the file_change before it already says what the step changed.
        const id = str(data.checkpoint_id);
        if (!id || next.checkpoints.some((c) => c.id === id)) break;
        next.checkpoints = [
          ...next.checkpoints,
          {
            id,
            parentId: str(data.parent_id),
            filesChanged: num(data.files_changed),
            kind: str(data.kind) || "step",
            agent,
            tool: ev.tool ?? "",
            callId: str(data.call_id),
            runId,
            at,
          },
        ];
        break;
      }
      case "tool_result": {
        const callId = str(data.call_id);
        const key = toolKey(runId, callId, undefined, seqKey);
        const old = get(key);
        const base: ToolItem = old?.kind === "tool" ? old : blankTool(key, callId, runId, ev.tool ?? "", agent, at);
        put({ ...base, output: ev.content ?? "", isError: data.is_error === true });
        if (WORKSPACE_TOOLS.has(ev.tool ?? "")) next.workspaceVersion++;
        break;
      }
      case "file_change": {
        const paths = ev.paths?.length ? ev.paths : (ev.content ?? "").split(", ").filter(Boolean);
        next.files = { version: next.files.version + 1, changed: paths };
        // It follows the result of the call that wrote the files: show the paths on that call.
        const last = next.items[logEnd() - 1];
        if (last?.kind === "tool" && last.agent === agent && (!ev.tool || last.tool === ev.tool)) {
          put({ ...last, paths: [...new Set([...last.paths, ...paths])] });
        } else {
          put({ kind: "files", key: `f:${seqKey}`, agent, paths, at });
        }
        break;
      }
      case "status":
      case "error": {
        put({ kind: type, key: `n:${ev.message_id || seqKey}`, agent, content: ev.content ?? "", at, runId });
        break;
      }
      case "plan": {
        const tasks = Array.isArray(data.tasks) ? data.tasks.map(toTask) : [];
        next.plan = { tasks, finished: ev.content === "plan finished", runId };
        break;
      }
      case "task": {
        const task = toTask(data.task);
        if (!task.id) break;
        const tasks = next.plan?.tasks.slice() ?? [];
        const i = tasks.findIndex((t) => t.id === task.id);
        if (i >= 0) tasks[i] = task;
        else tasks.push(task);
        next.plan = { tasks, finished: next.plan?.finished ?? false, runId: runId || next.plan?.runId || "" };
        break;
      }
      case "usage": {
        const s = data.session as Record<string, unknown> | undefined;
        if (s) next.usage = { inputTokens: num(s.input_tokens), outputTokens: num(s.output_tokens), costUsd: num(s.cost_usd) };
        break;
      }
      default:
        // "run" and types this console does not know yet carry no chat line.
        break;
    }

    const status = type === "run" ? str(data.status) || ev.content || "" : str(data.status);
    if (status) setRunStatus(next, runId, status, str(data.question));
  }
  return next;
}

function draftKey(messageId: string): string {
  return `t:d:${messageId}`;
}

function blankTool(key: string, callId: string, runId: string, tool: string, agent: string, at: string): ToolItem {
  return { kind: "tool", key, callId, runId, tool, agent, args: "", drafting: false, output: null, live: "", isError: false, control: false, interrupted: false, paths: [], at };
}

/** The last max characters of s, cut at a line start when one is near, and saying so. */
function tail(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.length - max;
  const nl = s.indexOf("\n", cut);
  if (nl >= 0 && nl - cut < 200) cut = nl + 1;
  return `… (earlier output not shown)\n${s.slice(cut)}`;
}

function toolKey(runId: string, callId: string, messageId: string | undefined, seqKey: string): string {
  // Call ids are unique within a run only (a provider may number them per run).
  if (callId) return `t:${runId}:${callId}`;
  return `t:${messageId || seqKey}`;
}

function setRunStatus(view: SessionView, runId: string, status: string, question: string): void {
  const normalized = status === "started" ? "running" : status;
  const cur = view.run;
  // A stale status of an earlier run never overrides the run that holds the session now. Another
  // run's start does (it took over), unless the run holding the session is one the API reported
  // queued, which the log never says: a queued run starts only after every run before it ended, so
  // another run's start arriving then is an earlier run's, replayed (a message sent while the log
  // was still being replayed, after a page load or a dropped stream). Taking it would show that old
  // run's progress, then its end, as if the new one had finished.
  const stale = status !== "started" || cur?.status === "queued";
  if (cur && cur.active && runId && cur.id && runId !== cur.id && stale) return;
  const active = ACTIVE.has(normalized);
  view.run = { id: runId || cur?.id || "", status: normalized, active, question: normalized === "waiting" ? question || cur?.question || "" : "" };
  if (!active) settle(view);
}

/**
 * A run that ended leaves nothing in flight: a half-streamed message keeps what arrived, and a call
 * that never returned (the run was cancelled or failed during it) says so.
 */
function settle(view: SessionView): void {
  view.items = view.items.map((it) => {
    if (it.kind === "message" && it.streaming) return { ...it, streaming: false };
    if (it.kind === "tool" && it.output === null) return { ...it, output: "", drafting: false, interrupted: true };
    return it;
  });
}

function isPending(it: ChatItem): boolean {
  return it.kind === "message" && it.pending === true;
}

/** The user's own message, shown as soon as the API accepted it; its event later updates it in place. */
export function addMessage(view: SessionView, m: Message): SessionView {
  if (!m.id || view.items.some((it) => it.key === `m:${m.id}`)) return view;
  const item: MessageItem = {
    kind: "message",
    key: `m:${m.id}`,
    id: m.id,
    sender: m.sender ?? "user",
    agent: (m.agent ?? "").toLowerCase(),
    content: m.content ?? "",
    streaming: false,
    question: false,
    at: m.timestamp ?? "",
    runId: "",
    pending: true,
  };
  return { ...view, items: [...view.items, item] };
}

/**
 * What a message the API accepted changes before its events arrive: the user's line at once, and a
 * run queued for it — unless the message went to the run already active (steered: its lead reads it
 * at its next turn) or answered a question (the waiting run goes on).
 */
export function messageSent(view: SessionView, res: { user?: Message; run_id?: string; steered?: boolean }, answered: boolean): SessionView {
  let next = res.user ? addMessage(view, res.user) : view;
  if (res.run_id && !answered && !res.steered) next = runQueued(next, res.run_id);
  return next;
}

/**
 * Files the console itself changed (a checkpoint restored): the files panel re-lists and re-reads
 * them as it does for a file_change event, which a restore through the API does not emit.
 */
export function filesTouched(view: SessionView, paths: readonly string[]): SessionView {
  return { ...view, files: { version: view.files.version + 1, changed: [...paths] } };
}

/** Marks a run the API just accepted (queued), before its first event arrives. */
export function runQueued(view: SessionView, runId: string): SessionView {
  return { ...view, run: { id: runId, status: "queued", active: true, question: "" } };
}

/**
 * Takes the run state from GET /api/sessions/{id}/run, which may answer after the stream has
 * already moved on. It only fills what the events cannot know: the state before any run event, or
 * a newer run that is queued and has emitted nothing yet.
 */
export function applyRun(view: SessionView, run: Run | null): SessionView {
  if (!run?.status || !run.id) return view;
  const cur = view.run;
  if (cur && !(cur.id !== run.id && run.active && !cur.active)) return view;
  const next = { ...view };
  setRunStatus(next, run.id ?? "", run.status, run.question ?? "");
  return next;
}

/**
 * Takes the plan fetched from GET /api/sessions/{id}/plan. The event log holds every plan and task
 * event, so a plan the events already built is at least as new and wins; the fetched one fills the
 * view until then (or when the log has none).
 */
export function seedPlan(view: SessionView, plan: ApiPlan | null | undefined): SessionView {
  if (!plan || view.plan) return view;
  const tasks = plan.tasks ?? [];
  if (tasks.length === 0 && !plan.finished) return view;
  return { ...view, plan: { tasks: tasks.map(toTask), finished: plan.finished === true, runId: plan.run_id ?? "" } };
}

/** Chat items from the stored history, shown until the event log has been replayed. */
export function fromHistory(messages: readonly Message[]): ChatItem[] {
  return messages.map((m): ChatItem => {
    const key = `m:${m.id ?? ""}`;
    if (m.sender === "status") {
      return { kind: "status", key, agent: (m.agent ?? "").toLowerCase(), content: m.content ?? "", at: m.timestamp ?? "", runId: "" };
    }
    return {
      kind: "message",
      key,
      id: m.id ?? "",
      sender: m.sender ?? "agent",
      agent: (m.agent ?? "").toLowerCase(),
      content: m.content ?? "",
      streaming: false,
      question: false,
      at: m.timestamp ?? "",
      runId: "",
    };
  });
}

function toTask(v: unknown): Task {
  const t = (v && typeof v === "object" ? v : {}) as Record<string, unknown>;
  return {
    id: str(t.id),
    title: str(t.title),
    assignee: str(t.assignee).toLowerCase(),
    status: str(t.status) || "todo",
    note: str(t.note),
    dependsOn: Array.isArray(t.depends_on) ? t.depends_on.map(str) : [],
  };
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function num(v: unknown): number {
  return typeof v === "number" ? v : typeof v === "string" ? Number(v) || 0 : 0;
}
