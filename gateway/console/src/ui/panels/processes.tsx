// Background processes of the sandbox (dev servers, watchers) and their logs, followed live.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../../api/http";
import type { Process } from "../../api/types";
import { useApi } from "../context";
import { cls, relativeTime } from "../format";
import { RefreshIcon, StopIcon, TerminalIcon } from "../icons";
import { toastError } from "../toast";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

/** The log view keeps this many characters; older output scrolls out. */
const KEEP = 512 * 1024;
// Terminal colour and cursor sequences: the view shows plain text.
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007/g;

function ProcessesPanel({ sessionId, view, active }: PanelProps) {
  const api = useApi();
  const [list, setList] = useState<Process[] | null>(null);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const ps = await api.processes(sessionId);
      setList(ps);
      setError("");
      setSelected((cur) => (cur && ps.some((p) => p.name === cur) ? cur : (ps.find((p) => p.state === "running") ?? ps[0])?.name ?? null));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [api, sessionId]);

  const runEnded = view.run && !view.run.active ? view.run.id + view.run.status : "";
  useEffect(() => {
    void load();
  }, [load, view.workspaceVersion, runEnded]);

  // Exits are not events: look again while the panel is on screen.
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => void load(), 5000);
    return () => clearInterval(t);
  }, [active, load]);

  const proc = list?.find((p) => p.name === selected) ?? null;

  if (list !== null && list.length === 0) {
    return (
      <Empty icon={<TerminalIcon size={28} />} title="No background processes">
        {error || "Servers and watchers the team starts in the sandbox are listed here, with their logs."}
      </Empty>
    );
  }

  return (
    <div class="procs">
      <div class="proc-list">
        <div class="pane-head">
          <span>Processes</span>
          <button class="icon-btn" title="Refresh" aria-label="Refresh the processes" onClick={() => void load()}>
            <RefreshIcon size={14} />
          </button>
        </div>
        {error && <div class="list-note error">{error}</div>}
        {list === null && !error && <div class="list-note">Loading…</div>}
        {list?.map((p) => (
          <button key={p.name} type="button" class={cls("proc-row", p.name === selected && "selected")} onClick={() => setSelected(p.name ?? null)}>
            <span class={cls("state-dot", p.state)} title={p.state} />
            <span class="proc-name">{p.name}</span>
            <span class="proc-cmd" title={p.command}>
              {p.command}
            </span>
          </button>
        ))}
      </div>
      <div class="proc-log">
        {proc ? (
          <>
            <div class="pane-head">
              <span class="proc-title">
                <span class={cls("state-dot", proc.state)} />
                {proc.name}
                <span class="muted small">
                  {proc.state === "running"
                    ? `running · pid ${proc.pid} · started ${relativeTime(proc.started_at)}`
                    : `exited with ${proc.exit_code} · ${relativeTime(proc.exited_at)}`}
                </span>
              </span>
              {proc.state === "running" && (
                <button
                  class="btn subtle tiny"
                  onClick={async () => {
                    try {
                      await api.stopProcess(sessionId, proc.name ?? "");
                      setTimeout(() => void load(), 500);
                    } catch (err) {
                      toastError(err, "Could not stop the process");
                    }
                  }}
                >
                  <StopIcon size={12} /> Stop
                </button>
              )}
            </div>
            <Log key={`${sessionId}/${proc.name}/${proc.started_at}`} sessionId={sessionId} name={proc.name ?? ""} running={proc.state === "running"} />
          </>
        ) : (
          <Empty icon={<TerminalIcon size={28} />} title="No process selected" />
        )}
      </div>
    </div>
  );
}

/** Follows one process's log: from the start, then live; resumes from its offset if the stream breaks. */
function Log({ sessionId, name, running }: { sessionId: string; name: string; running: boolean }) {
  const api = useApi();
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const ref = useRef<HTMLPreElement>(null);
  const pinned = useRef(true);
  const runningRef = useRef(running);
  runningRef.current = running;

  useEffect(() => {
    const ctl = new AbortController();
    const decoder = new TextDecoder();
    let offset = 0;
    (async () => {
      for (let attempt = 0; !ctl.signal.aborted; attempt++) {
        try {
          offset = await api.followLogs(
            sessionId,
            name,
            offset,
            (bytes) => {
              const chunk = decoder.decode(bytes, { stream: true }).replace(ANSI, "");
              if (chunk) setText((t) => (t + chunk).slice(-KEEP));
            },
            ctl.signal,
          );
          setError("");
          attempt = 0;
          // The server ends a followed log when the process exits.
          if (!runningRef.current) return;
        } catch (err) {
          if (isAbort(err)) return;
          setError(err instanceof Error ? err.message : String(err));
          if (attempt >= 5) return;
        }
        await new Promise((r) => setTimeout(r, Math.min(8000, 1000 * 2 ** attempt)));
      }
    })();
    return () => ctl.abort();
  }, [api, sessionId, name]);

  useEffect(() => {
    const el = ref.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  return (
    <pre
      ref={ref}
      class="log"
      data-testid="process-log"
      onScroll={(e) => {
        const el = e.currentTarget;
        pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 32;
      }}
    >
      {text || (error ? "" : "(no output yet)")}
      {error && <span class="error-text">{`\n${error}`}</span>}
    </pre>
  );
}

export const processesPanel: WorkspacePanel = {
  id: "processes",
  title: "Processes",
  Icon: TerminalIcon,
  badge: () => undefined,
  Component: ProcessesPanel,
};
