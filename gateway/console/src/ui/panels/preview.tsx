// The live preview of the sandbox's dev server, in a frame. Preview URLs are capability URLs on
// their own origins (p<port>-<session>.preview.<host>), which the console's CSP allows to frame.
import { useCallback, useEffect, useState } from "preact/hooks";
import type { PortPreview } from "../../api/types";
import { useApi } from "../context";
import { cls } from "../format";
import { ExternalIcon, GlobeIcon, RefreshIcon } from "../icons";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

function PreviewPanel({ sessionId, view, active }: PanelProps) {
  const api = useApi();
  const [previews, setPreviews] = useState<PortPreview[] | null>(null);
  const [error, setError] = useState("");
  // What the frame shows. Every listing mints fresh capability URLs; the frame keeps the one it
  // loaded (a new src would reload the app under the user) until the port goes or "reload" asks.
  const [frame, setFrame] = useState<{ port: number; url: string; n: number } | null>(null);
  const [loading, setLoading] = useState(false);

  const load = useCallback(
    async (reloadPort?: number) => {
      setLoading(true);
      try {
        const p = await api.preview(sessionId);
        const list = (p.previews ?? []).filter((x) => x.url);
        setPreviews(list);
        setError("");
        setFrame((cur) => {
          const want = reloadPort ?? cur?.port;
          const pick = list.find((x) => x.container_port === want) ?? list[0];
          if (!pick) return null;
          if (cur && cur.port === pick.container_port && reloadPort === undefined) return cur;
          return { port: pick.container_port ?? 0, url: pick.url ?? "", n: (cur?.n ?? 0) + 1 };
        });
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      } finally {
        setLoading(false);
      }
    },
    [api, sessionId],
  );

  // Servers start and stop through tool calls; a finished run may have started one too.
  const runEnded = view.run && !view.run.active ? view.run.id + view.run.status : "";
  useEffect(() => {
    void load();
  }, [load, view.workspaceVersion, runEnded]);

  // While nothing is up and the team is working, look again now and then.
  const waiting = active && previews?.length === 0 && view.run?.active === true;
  useEffect(() => {
    if (!waiting) return;
    const t = setInterval(() => void load(), 4000);
    return () => clearInterval(t);
  }, [waiting, load]);

  if (!frame) {
    return (
      <Empty icon={<GlobeIcon size={28} />} title={previews === null && !error ? "Looking for a preview…" : "No preview yet"}>
        {error ? (
          <span class="error-text">{error}</span>
        ) : (
          "When the team starts a server in the sandbox, its live preview appears here."
        )}
        <div>
          <button class="btn subtle" onClick={() => void load()} disabled={loading}>
            <RefreshIcon size={14} /> Check again
          </button>
        </div>
      </Empty>
    );
  }

  return (
    <div class="preview">
      <div class="preview-bar">
        {previews && previews.length > 1 && (
          <div class="seg small" role="tablist" aria-label="Ports">
            {previews.map((p) => (
              <button
                key={p.container_port}
                role="tab"
                aria-selected={p.container_port === frame.port}
                class={cls("seg-btn", p.container_port === frame.port && "on")}
                onClick={() => void load(p.container_port)}
              >
                :{p.container_port}
              </button>
            ))}
          </div>
        )}
        <input class="url" readOnly value={frame.url} aria-label="Preview URL" onFocus={(e) => e.currentTarget.select()} />
        <button class="icon-btn" title="Reload the preview" aria-label="Reload the preview" disabled={loading} onClick={() => void load(frame.port)}>
          <RefreshIcon size={15} />
        </button>
        <a class="icon-btn" href={frame.url} target="_blank" rel="noopener noreferrer" title="Open in a new tab" aria-label="Open in a new tab">
          <ExternalIcon size={15} />
        </a>
      </div>
      <iframe
        key={frame.n}
        class="preview-frame"
        src={frame.url}
        title={`Preview of port ${frame.port}`}
        // The preview runs the sandbox's code: it may script itself, never the console or the tab.
        sandbox="allow-scripts allow-same-origin allow-forms allow-popups allow-modals allow-downloads"
        referrerpolicy="no-referrer"
      />
    </div>
  );
}

export const previewPanel: WorkspacePanel = {
  id: "preview",
  title: "Preview",
  Icon: GlobeIcon,
  Component: PreviewPanel,
};
