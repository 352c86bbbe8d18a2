// The live preview of the sandbox's dev server, in a frame. Preview URLs are capability URLs on
// their own origins (p<port>-<capability>.preview.<host>), which the console's CSP allows to frame:
// the capability in the host name is the whole credential, so the frame needs no cookie and works
// in any embedding page. A URL stays the same for hours; it changes when the sandbox is a new one
// or the link is rotated ("New link"), and the frame follows.
import { useCallback, useEffect, useState } from "preact/hooks";
import type { PortPreview } from "../../api/types";
import { useApi } from "../context";
import { cls } from "../format";
import { ExternalIcon, GlobeIcon, KeyIcon, RefreshIcon } from "../icons";
import { toast, toastError } from "../toast";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

/**
 * The port the team last asked a preview for (its preview_url call). A sandbox may listen on more
 * ports than the app's; without an announcement the lowest port wins (dev servers use low ports).
 */
function announcedPort(view: PanelProps["view"]): number | undefined {
  for (let i = view.items.length - 1; i >= 0; i--) {
    const it = view.items[i]!;
    if (it.kind === "tool" && it.tool === "preview_url" && !it.isError) {
      try {
        const port = Number((JSON.parse(it.args) as { port?: unknown }).port);
        if (port > 0) return port;
      } catch {
        // An unreadable call names no port.
      }
    }
  }
  return undefined;
}

function PreviewPanel({ sessionId, view, active }: PanelProps) {
  const api = useApi();
  const [previews, setPreviews] = useState<PortPreview[] | null>(null);
  const [error, setError] = useState("");
  // What the frame shows. The frame keeps the URL it loaded (a new src would reload the app under
  // the user) until the port goes, its URL changes (a new sandbox, a rotation: the old one is dead)
  // or "reload" asks. chosen: the user picked the port; an announcement no longer moves the frame.
  const [frame, setFrame] = useState<{ port: number; url: string; n: number; chosen: boolean } | null>(null);
  const [loading, setLoading] = useState(false);
  const announced = announcedPort(view);

  const load = useCallback(
    async (reloadPort?: number) => {
      setLoading(true);
      try {
        const p = await api.preview(sessionId);
        const list = (p.previews ?? []).filter((x) => x.url);
        setPreviews(list);
        setError("");
        const byPort = list.slice().sort((a, b) => (a.container_port ?? 0) - (b.container_port ?? 0));
        setFrame((cur) => {
          const want = reloadPort ?? (announced !== undefined && announced !== cur?.port && !cur?.chosen ? announced : cur?.port);
          const pick = list.find((x) => x.container_port === want) ?? byPort.find((x) => x.container_port === announced) ?? byPort[0];
          if (!pick) return null;
          if (cur && cur.port === pick.container_port && cur.url === pick.url && reloadPort === undefined) return cur;
          const chosen = reloadPort !== undefined ? true : (cur?.chosen ?? false);
          return { port: pick.container_port ?? 0, url: pick.url ?? "", n: (cur?.n ?? 0) + 1, chosen };
        });
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      } finally {
        setLoading(false);
      }
    },
    [api, sessionId, announced],
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

  const rotate = async () => {
    setLoading(true);
    try {
      await api.rotatePreview(sessionId);
      toast("New preview link: the previous one no longer opens the app.");
    } catch (err) {
      toastError(err, "Could not make a new link");
    } finally {
      setLoading(false);
    }
    await load(frame?.port);
  };

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
        <button
          class="icon-btn"
          title="New link: the link is a key to the preview; make a new one if it was shared by mistake (the old one stops working)"
          aria-label="Make a new preview link"
          disabled={loading}
          onClick={() => void rotate()}
        >
          <KeyIcon size={15} />
        </button>
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
