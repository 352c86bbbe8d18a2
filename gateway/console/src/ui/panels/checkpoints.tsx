// The workspace's history: a checkpoint after every agent step that changed files (and those a
// person asks for). Listed from GET /api/sandbox/{id}/checkpoints, newest first, and again whenever
// a `checkpoint` event arrives; a selected one shows what its step changed (the diff from its
// predecessor) or what changed since (against the workspace now), and can be restored whole or a
// file at a time. A restore checkpoints the state before it, so it shows up in the list as the undo.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { person } from "../../agents";
import type { Checkpoint, CheckpointDiff, FileDiff } from "../../api/types";
import { isAbort } from "../../api/http";
import { diffSides, parseUnifiedDiff } from "../../state/diff";
import { useApi } from "../context";
import { clockTime, cls, relativeTime } from "../format";
import { HistoryIcon, PlusIcon, RefreshIcon } from "../icons";
import { toast, toastError } from "../toast";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

type Mode = "step" | "now";

const KIND_LABEL: Record<string, string> = {
  step: "Step",
  manual: "Checkpoint",
  before_restore: "Before a restore",
};

function label(cp: Checkpoint): string {
  return cp.message?.trim() || KIND_LABEL[cp.kind ?? ""] || "Checkpoint";
}

function filesText(n: number | undefined): string {
  const c = n ?? 0;
  return c === 1 ? "1 file" : `${c} files`;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function CheckpointsPanel({ sessionId, view, onFilesChanged }: PanelProps) {
  const api = useApi();
  const [list, setList] = useState<Checkpoint[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  // Bumped after a restore: the open diff (against now, above all) is stale.
  const [restores, setRestores] = useState(0);
  const listOf = useRef("");

  /** The newest page; older pages already loaded stay below it. */
  const load = useCallback(async () => {
    try {
      const page = await api.checkpoints(sessionId);
      const fresh = page.checkpoints ?? [];
      // A reload keeps the older pages a person already opened; another session starts over.
      const same = listOf.current === sessionId;
      listOf.current = sessionId;
      const ids = new Set(fresh.map((c) => c.id));
      setList((cur) => (same && cur ? [...fresh, ...cur.filter((c) => !ids.has(c.id))] : fresh));
      if (!same) setMore(page.more === true);
      setError("");
      setSelected((cur) => (same && cur ? cur : (fresh[0]?.id ?? null)));
    } catch (err) {
      setError(errText(err));
    }
  }, [api, sessionId]);

  const loadOlder = async () => {
    const last = list?.[list.length - 1]?.id;
    if (!last) return;
    try {
      const page = await api.checkpoints(sessionId, last);
      setList((cur) => [...(cur ?? []), ...(page.checkpoints ?? []).filter((c) => !cur?.some((o) => o.id === c.id))]);
      setMore(page.more === true);
    } catch (err) {
      toastError(err, "Could not load older checkpoints");
    }
  };

  const announced = view.checkpoints.length;
  useEffect(() => {
    void load();
  }, [load, announced]);

  const createNow = async () => {
    setCreating(true);
    try {
      const res = await api.createCheckpoint(sessionId);
      if (!res.created) toast("Nothing changed since the latest checkpoint.");
      await load();
      if (res.checkpoint?.id) setSelected(res.checkpoint.id);
    } catch (err) {
      toastError(err, "Could not create a checkpoint");
    } finally {
      setCreating(false);
    }
  };

  const restore = async (cp: Checkpoint, path: string, touched: readonly string[]) => {
    try {
      const res = await api.restoreCheckpoint(sessionId, cp.id ?? "", path);
      const n = res.files_changed ?? 0;
      toast(
        `${path ? `Restored ${path}` : `Restored “${label(cp)}”`}: ${n === 1 ? "1 file" : `${n} files`} written or deleted.` +
          (res.before?.id ? " The state before it is saved as a checkpoint." : ""),
      );
      onFilesChanged(path ? [path] : touched);
      setRestores((r) => r + 1);
      await load();
    } catch (err) {
      toastError(err, "Could not restore the checkpoint");
    }
  };

  if (list === null && !error) {
    return <Empty icon={<HistoryIcon size={28} />} title="Loading checkpoints…" />;
  }

  const current = list?.find((c) => c.id === selected) ?? null;
  return (
    <div class="procs checkpoints">
      <div class="proc-list">
        <div class="pane-head">
          <span>Checkpoints</span>
          <span class="row-actions">
            <button
              class="icon-btn"
              data-testid="checkpoint-now"
              title="Checkpoint now: save the workspace as it is"
              aria-label="Checkpoint now"
              disabled={creating}
              onClick={() => void createNow()}
            >
              <PlusIcon size={14} />
            </button>
            <button class="icon-btn" title="Refresh" aria-label="Refresh the checkpoints" onClick={() => void load()}>
              <RefreshIcon size={14} />
            </button>
          </span>
        </div>
        {error && <div class="list-note error">{error}</div>}
        {list?.length === 0 && <div class="list-note">No checkpoints yet. Each step the team takes that changes files is saved here.</div>}
        <ul class="cp-list" aria-label="Checkpoints">
          {list?.map((cp) => (
            <li key={cp.id}>
              <button
                type="button"
                class={cls("proc-row", "cp-row", cp.id === selected && "selected")}
                data-checkpoint={cp.id}
                data-parent={cp.parent_id ?? ""}
                data-kind={cp.kind}
                aria-pressed={cp.id === selected}
                onClick={() => setSelected(cp.id ?? null)}
              >
                <span class={cls("cp-dot", cp.kind)} title={KIND_LABEL[cp.kind ?? ""] ?? cp.kind} />
                <span class="cp-label">{label(cp)}</span>
                <span class="proc-cmd">
                  {[cp.agent ? person(cp.agent).name : "You", relativeTime(cp.created_at), filesText(cp.files_changed)].filter(Boolean).join(" · ")}
                </span>
              </button>
            </li>
          ))}
        </ul>
        {more && (
          <div class="list-note">
            <button class="btn subtle tiny" onClick={() => void loadOlder()}>
              Load older
            </button>
          </div>
        )}
      </div>
      <div class="proc-log">
        {current ? (
          <CheckpointView key={current.id} sessionId={sessionId} cp={current} restores={restores} onRestore={restore} />
        ) : (
          <Empty icon={<HistoryIcon size={28} />} title={list?.length ? "No checkpoint selected" : "No checkpoints yet"}>
            {list?.length ? "" : "Each step the team takes that changes files is saved as a checkpoint, with its diff and a way to restore it."}
          </Empty>
        )}
      </div>
    </div>
  );
}

interface ViewProps {
  sessionId: string;
  cp: Checkpoint;
  restores: number;
  onRestore: (cp: Checkpoint, path: string, touched: readonly string[]) => Promise<void>;
}

/** One checkpoint: what it holds, its diff per file, and its restore actions. */
function CheckpointView({ sessionId, cp, restores, onRestore }: ViewProps) {
  const api = useApi();
  const ref = { id: cp.id ?? "", parentId: cp.parent_id ?? "" };
  const [mode, setMode] = useState<Mode>(ref.parentId ? "step" : "now");
  const [diff, setDiff] = useState<CheckpointDiff | null>(null);
  const [error, setError] = useState("");
  const sides = diffSides(ref, mode);

  useEffect(() => {
    if (!sides) return;
    const ctl = new AbortController();
    setDiff(null);
    setError("");
    api.diffCheckpoint(sessionId, sides.from, sides.against, "", ctl.signal).then(
      (d) => setDiff(d),
      (err) => !isAbort(err) && setError(errText(err)),
    );
    return () => ctl.abort();
  }, [api, sessionId, sides?.from, sides?.against, restores]);

  const files = diff?.files ?? [];
  const who = cp.agent ? person(cp.agent).name : "You";
  return (
    <>
      <div class="pane-head">
        <span class="proc-title">
          <span class="cp-title">{label(cp)}</span>
          <span class="muted small">{[who, clockTime(cp.created_at), filesText(cp.files_changed)].join(" · ")}</span>
        </span>
        <Confirm
          label="Restore"
          question="Restore the whole workspace to this checkpoint?"
          testId="checkpoint-restore"
          onConfirm={() => onRestore(cp, "", files.map((f) => f.path ?? ""))}
        />
      </div>
      <div class="cp-modes" role="radiogroup" aria-label="Compare">
        <button type="button" role="radio" aria-checked={mode === "step"} class={cls("chip", mode === "step" && "on")} disabled={!ref.parentId} onClick={() => setMode("step")}>
          Changes in this checkpoint
        </button>
        <button type="button" role="radio" aria-checked={mode === "now"} class={cls("chip", mode === "now" && "on")} onClick={() => setMode("now")}>
          Changed since (vs now)
        </button>
      </div>
      <div class="cp-diff" data-testid="checkpoint-diff" data-checkpoint={ref.id} data-mode={mode} aria-busy={sides !== null && diff === null && !error}>
        {!sides && <div class="list-note">The first checkpoint: nothing came before it to compare with.</div>}
        {error && <div class="list-note error">{error}</div>}
        {sides && !diff && !error && <div class="list-note">Loading the diff…</div>}
        {diff && files.length === 0 && (
          <div class="list-note">{mode === "now" ? "The workspace is as this checkpoint left it." : "No file differs from the checkpoint before."}</div>
        )}
        {files.map((f) => (
          <FileDiffView
            key={f.path}
            f={f}
            // A file the checkpoint does not hold cannot be restored from it on its own.
            restorable={mode === "step" ? f.status !== "deleted" : f.status !== "added"}
            onRestore={() => onRestore(cp, f.path ?? "", [f.path ?? ""])}
          />
        ))}
        {diff?.truncated && <div class="list-note">More files differ than are shown here.</div>}
      </div>
    </>
  );
}

/** One file of a diff: its status, counts and numbered lines; exported for the rendering tests. */
export function FileDiffView({ f, restorable, onRestore }: { f: FileDiff; restorable: boolean; onRestore: () => Promise<void> }) {
  const parsed = useMemo(() => parseUnifiedDiff(f.diff ?? ""), [f.diff]);
  return (
    <section class="cp-file" data-path={f.path}>
      <header class="cp-file-head">
        <span class={cls("cp-status", f.status)}>{f.status}</span>
        <span class="cp-path" title={f.path}>
          {f.path}
        </span>
        <span class="cp-counts">
          {parsed.added > 0 && <span class="cp-add">+{parsed.added}</span>}
          {parsed.removed > 0 && <span class="cp-del">−{parsed.removed}</span>}
        </span>
        {restorable && <Confirm label="Restore file" question={`Restore ${f.path}?`} small onConfirm={onRestore} />}
      </header>
      {f.binary ? (
        <div class="list-note">Binary file; no text diff.</div>
      ) : parsed.lines.length === 0 ? (
        <div class="list-note">{f.status === "added" ? "Empty file." : "No text changes."}</div>
      ) : (
        <table class="diff">
          <tbody>
            {parsed.lines.map((l, i) =>
              l.kind === "hunk" ? (
                <tr key={i} class="diff-hunk">
                  <td colSpan={3}>{l.text}</td>
                </tr>
              ) : l.kind === "note" ? (
                <tr key={i} class="diff-note">
                  <td colSpan={3}>{l.text}</td>
                </tr>
              ) : (
                <tr key={i} class={`diff-${l.kind}`}>
                  <td class="ln">{l.oldNo || ""}</td>
                  <td class="ln">{l.newNo || ""}</td>
                  <td class="code">
                    <span class="mark">{l.kind === "add" ? "+" : l.kind === "del" ? "−" : " "}</span>
                    {l.text}
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
      {f.truncated && <div class="list-note">The diff was cut at its size limit.</div>}
    </section>
  );
}

/** A button that asks once more before it acts (a restore overwrites files). */
function Confirm({ label, question, onConfirm, small, testId }: { label: string; question: string; onConfirm: () => Promise<void>; small?: boolean; testId?: string }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button class={cls("btn", "subtle", small ? "tiny" : "small")} data-testid={testId} onClick={() => setAsking(true)}>
        <HistoryIcon size={12} /> {label}
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={question}>
      <span class="small">{question}</span>
      <button
        ref={yes}
        class="btn danger tiny"
        data-testid={testId && `${testId}-confirm`}
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {label}
      </button>
      <button class="btn subtle tiny" disabled={busy} onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export const checkpointsPanel: WorkspacePanel = {
  id: "checkpoints",
  title: "Checkpoints",
  Icon: HistoryIcon,
  badge: (v) => (v.checkpoints.length > 0 ? v.checkpoints.length : undefined),
  Component: CheckpointsPanel,
};
