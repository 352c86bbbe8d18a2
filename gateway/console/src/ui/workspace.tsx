import { useEffect, useRef, useState } from "preact/hooks";
import type { SessionView } from "../state/session";
import { cls } from "./format";
import { filesPanel } from "./panels/files";
import { artifactsPanel } from "./panels/artifacts";
import { checkpointsPanel } from "./panels/checkpoints";
import type { WorkspacePanel } from "./panels/panel";
import { planPanel } from "./panels/plan";
import { previewPanel } from "./panels/preview";
import { processesPanel } from "./panels/processes";

/** The workspace's panels, in tab order. */
export const PANELS: readonly WorkspacePanel[] = [previewPanel, filesPanel, planPanel, processesPanel, artifactsPanel, checkpointsPanel];

interface Props {
  sessionId: string;
  view: SessionView;
  tab: string;
  onTab: (id: string) => void;
  /** Something to show, asked for from the chat: a file (panel "files") or an artifact. */
  focus: { panel: string; path: string; nonce: number } | null;
  onFilesChanged: (paths: readonly string[]) => void;
}

/** Tabs over the panels. Every panel stays mounted, so switching keeps a preview and its state. */
export function Workspace({ sessionId, view, tab, onTab, focus, onFilesChanged }: Props) {
  const tabs = useRef<HTMLDivElement>(null);
  const [mounted, setMounted] = useState<Set<string>>(() => new Set([tab]));
  useEffect(() => setMounted((m) => (m.has(tab) ? m : new Set([...m, tab]))), [tab]);

  const onKey = (e: KeyboardEvent) => {
    const i = PANELS.findIndex((p) => p.id === tab);
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const next = PANELS[(i + step + PANELS.length) % PANELS.length]!;
    onTab(next.id);
    tabs.current?.querySelector<HTMLButtonElement>(`[data-tab="${next.id}"]`)?.focus();
  };

  return (
    <section class="workspace" aria-label="Workspace">
      <div class="tabs" role="tablist" ref={tabs} onKeyDown={onKey}>
        {PANELS.map((p) => {
          const badge = p.badge?.(view);
          return (
            <button
              key={p.id}
              role="tab"
              id={`tab-${p.id}`}
              data-tab={p.id}
              aria-selected={p.id === tab}
              aria-controls={`panel-${p.id}`}
              tabIndex={p.id === tab ? 0 : -1}
              class={cls("tab", p.id === tab && "on")}
              title={p.title}
              // Narrow layouts hide the inactive tabs' titles; the name must not become the badge alone.
              aria-label={badge !== undefined ? `${p.title} (${badge})` : p.title}
              onClick={() => onTab(p.id)}
            >
              <p.Icon size={15} />
              <span>{p.title}</span>
              {badge !== undefined && <span class="badge">{badge}</span>}
            </button>
          );
        })}
      </div>
      {PANELS.map((p) =>
        mounted.has(p.id) ? (
          <div key={p.id} id={`panel-${p.id}`} role="tabpanel" aria-labelledby={`tab-${p.id}`} class="panel" hidden={p.id !== tab}>
            <p.Component sessionId={sessionId} view={view} active={p.id === tab} focus={focus?.panel === p.id ? focus : null} onFilesChanged={onFilesChanged} />
          </div>
        ) : null,
      )}
    </section>
  );
}
