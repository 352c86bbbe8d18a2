// What the team's tools made for the user to see: preview screenshots, charts. Listed from
// GET /api/sessions/{id}/artifacts (and again whenever an artifact event arrives); images are
// fetched with the bearer header and shown from blob: URLs (state/artifact-urls.ts), never with a
// token in an <img src>.
import { useCallback, useEffect, useState } from "preact/hooks";
import { person } from "../../agents";
import type { Artifact } from "../../api/types";
import { artifactURL, useArtifactURL } from "../../state/artifact-urls";
import { useApi } from "../context";
import { clockTime, cls, fileSize } from "../format";
import { ExternalIcon, FileIcon, ImageIcon, RefreshIcon } from "../icons";
import { toastError } from "../toast";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

function isImage(a: Artifact): boolean {
  return (a.content_type ?? "").startsWith("image/");
}

function ArtifactsPanel({ sessionId, view, focus }: PanelProps) {
  const api = useApi();
  const [list, setList] = useState<Artifact[] | null>(null);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const as = await api.artifacts(sessionId);
      setList(as);
      setError("");
      // The newest is what a person wants to see, unless they picked one.
      setSelected((cur) => (cur && as.some((a) => a.id === cur) ? cur : (as[as.length - 1]?.id ?? null)));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [api, sessionId]);

  const announced = view.artifacts.length;
  useEffect(() => {
    void load();
  }, [load, announced]);

  // Asked for from the chat: show that one (the list may not have it yet; the next load brings it).
  useEffect(() => {
    if (focus) setSelected(focus.path);
  }, [focus?.path, focus?.nonce]);

  if (list === null && !error) {
    return <Empty icon={<ImageIcon size={28} />} title="Loading artifacts…" />;
  }
  if (!list || list.length === 0) {
    return (
      <Empty icon={<ImageIcon size={28} />} title="No artifacts yet">
        {error ? <span class="error-text">{error}</span> : "Screenshots of the app and charts the team makes are collected here."}
        {error && (
          <div>
            <button class="btn subtle" onClick={() => void load()}>
              <RefreshIcon size={14} /> Try again
            </button>
          </div>
        )}
      </Empty>
    );
  }

  const current = list.find((a) => a.id === selected) ?? list[list.length - 1]!;
  return (
    <div class="artifacts">
      <ArtifactView sessionId={sessionId} a={current} />
      <ul class="artifact-grid" aria-label="Artifacts">
        {list
          .slice()
          .reverse()
          .map((a) => (
            <li key={a.id}>
              <button
                type="button"
                class={cls("artifact-card", a.id === current.id && "selected")}
                data-artifact={a.id}
                aria-pressed={a.id === current.id}
                onClick={() => setSelected(a.id ?? null)}
              >
                {isImage(a) ? <Thumb sessionId={sessionId} a={a} /> : <span class="thumb file"><FileIcon size={22} /></span>}
                <span class="artifact-name">{a.name}</span>
                <span class="muted small">{[a.source, clockTime(a.created_at)].filter(Boolean).join(" · ")}</span>
              </button>
            </li>
          ))}
      </ul>
    </div>
  );
}

function Thumb({ sessionId, a }: { sessionId: string; a: Artifact }) {
  const { url, error } = useArtifactURL(useApi(), sessionId, a.id ?? "");
  if (error) return <span class="thumb file" title={error}><ImageIcon size={22} /></span>;
  if (!url) return <span class="thumb placeholder" aria-busy="true" />;
  return (
    <span class="thumb">
      <img src={url} alt="" loading="lazy" />
    </span>
  );
}

/** One artifact, large: the image itself, what it shows, who made it, and a way to keep it. */
function ArtifactView({ sessionId, a }: { sessionId: string; a: Artifact }) {
  const api = useApi();
  const { url, error } = useArtifactURL(api, sessionId, a.id ?? "");
  const who = a.agent ? person(a.agent) : null;
  const open = async () => {
    try {
      window.open(await artifactURL(api, sessionId, a.id ?? ""), "_blank", "noopener");
    } catch (err) {
      toastError(err, "Could not open the artifact");
    }
  };
  return (
    <figure class="artifact-view" data-testid="artifact-view" data-artifact={a.id}>
      <div class="artifact-stage">
        {error ? (
          <span class="error-text">{error}</span>
        ) : !url ? (
          <span class="muted small">Loading…</span>
        ) : isImage(a) ? (
          <img src={url} alt={a.source ? `${a.name}: ${a.source}` : a.name} />
        ) : (
          <FileIcon size={40} />
        )}
      </div>
      <figcaption>
        <div class="artifact-title">
          <span class="artifact-name">{a.name}</span>
          <span class="muted small">
            {[who && `${who.name}${a.tool ? ` (${a.tool})` : ""}`, a.source, a.width && a.height ? `${a.width}×${a.height}` : "", fileSize(a.size), clockTime(a.created_at)]
              .filter(Boolean)
              .join(" · ")}
          </span>
        </div>
        <div class="artifact-actions">
          {url && (
            <a class="icon-btn" href={url} download={a.name} title="Download" aria-label="Download">
              <FileIcon size={15} />
            </a>
          )}
          <button class="icon-btn" type="button" title="Open in a new tab" aria-label="Open in a new tab" onClick={() => void open()}>
            <ExternalIcon size={15} />
          </button>
        </div>
      </figcaption>
    </figure>
  );
}

export const artifactsPanel: WorkspacePanel = {
  id: "artifacts",
  title: "Artifacts",
  Icon: ImageIcon,
  badge: (v) => (v.artifacts.length > 0 ? v.artifacts.length : undefined),
  Component: ArtifactsPanel,
};
