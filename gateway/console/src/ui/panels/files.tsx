// The sandbox's /workspace: a tree and a viewer, both following file_change events.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { FileContent, FileEntry } from "../../api/types";
import { useApi } from "../context";
import { cls, fileSize, relativeTime } from "../format";
import { ChevronIcon, FileIcon, FolderIcon, RefreshIcon } from "../icons";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

/** Levels the first listing fetches; deeper directories load when opened. */
const DEPTH = 3;
/** How long a changed file stays marked. */
const MARK_MS = 6000;

function sortEntries(list: FileEntry[]): FileEntry[] {
  return list.slice().sort((a, b) => {
    if (a.type !== b.type) return a.type === "directory" ? -1 : 1;
    return (a.name ?? "").localeCompare(b.name ?? "");
  });
}

function FilesPanel({ sessionId, view, focus }: PanelProps) {
  const api = useApi();
  const [entries, setEntries] = useState<FileEntry[] | null>(null);
  const [truncated, setTruncated] = useState(false);
  const [treeError, setTreeError] = useState("");
  /** Children of directories below DEPTH, loaded when opened. */
  const [deeper, setDeeper] = useState<Record<string, FileEntry[]>>({});
  const [open, setOpen] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [file, setFile] = useState<FileContent | null>(null);
  const [fileError, setFileError] = useState("");
  const [marked, setMarked] = useState<Set<string>>(new Set());
  const selectedRef = useRef(selected);
  selectedRef.current = selected;

  const loadTree = useCallback(async () => {
    try {
      const t = await api.fileTree(sessionId, "", DEPTH);
      setEntries(t.entries ?? []);
      setTruncated(t.truncated === true);
      setTreeError("");
    } catch (err) {
      setTreeError(err instanceof Error ? err.message : String(err));
    }
  }, [api, sessionId]);

  const loadFile = useCallback(
    async (path: string) => {
      try {
        const f = await api.readFile(sessionId, path);
        if (selectedRef.current === path) {
          setFile(f);
          setFileError("");
        }
      } catch (err) {
        if (selectedRef.current === path) {
          setFile(null);
          setFileError(err instanceof Error ? err.message : String(err));
        }
      }
    },
    [api, sessionId],
  );

  const select = useCallback(
    (path: string) => {
      setSelected(path);
      selectedRef.current = path;
      setFile(null);
      setFileError("");
      // Open the directories above it, so it is visible in the tree.
      setOpen((o) => {
        const n = new Set(o);
        const parts = path.split("/");
        for (let i = 1; i < parts.length; i++) n.add(parts.slice(0, i).join("/"));
        return n;
      });
      void loadFile(path);
    },
    [loadFile],
  );

  useEffect(() => {
    void loadTree();
  }, [loadTree]);

  // A file_change: list again, re-read the open file if it changed, and mark what changed.
  const changeVersion = view.files.version;
  const changed = view.files.changed;
  // Changes from before the panel opened (a replayed log) are not news.
  const seenVersion = useRef(changeVersion);
  useEffect(() => {
    if (changeVersion === seenVersion.current) return;
    seenVersion.current = changeVersion;
    const t = setTimeout(() => void loadTree(), 250);
    if (selectedRef.current && changed.includes(selectedRef.current)) void loadFile(selectedRef.current);
    setMarked((m) => new Set([...m, ...changed]));
    const clear = setTimeout(() => setMarked((m) => new Set([...m].filter((p) => !changed.includes(p)))), MARK_MS);
    return () => {
      clearTimeout(t);
      clearTimeout(clear);
    };
  }, [changeVersion]);

  useEffect(() => {
    if (focus) select(focus.path);
  }, [focus, select]);

  const toggle = async (e: FileEntry, level: number) => {
    const path = e.path ?? "";
    const opening = !open.has(path);
    setOpen((o) => {
      const n = new Set(o);
      if (opening) n.add(path);
      else n.delete(path);
      return n;
    });
    if (opening && level >= DEPTH && !deeper[path]) {
      try {
        const t = await api.fileTree(sessionId, path, 2);
        setDeeper((d) => ({ ...d, [path]: t.entries ?? [] }));
      } catch (err) {
        setTreeError(err instanceof Error ? err.message : String(err));
      }
    }
  };

  const renderEntries = (list: FileEntry[], level: number) =>
    sortEntries(list).map((e) => {
      const path = e.path ?? "";
      const isDir = e.type === "directory";
      const isOpen = open.has(path);
      const kids = level >= DEPTH ? deeper[path] : e.children;
      return (
        <li key={path} role="treeitem" aria-expanded={isDir ? isOpen : undefined} aria-selected={path === selected}>
          <button
            type="button"
            class={cls("tree-row", path === selected && "selected", marked.has(path) && "changed")}
            style={{ "--level": level - 1 }}
            onClick={() => (isDir ? void toggle(e, level) : select(path))}
            title={path}
            data-path={path}
          >
            {isDir ? <ChevronIcon size={12} class={cls("chev", isOpen && "open")} /> : <span class="chev-space" />}
            {isDir ? <FolderIcon size={14} class="folder" /> : <FileIcon size={14} />}
            <span class="tree-name">{e.name}</span>
            {marked.has(path) && <span class="dot" title="Changed just now" />}
          </button>
          {isDir && isOpen && kids && kids.length > 0 && <ul role="group">{renderEntries(kids, level + 1)}</ul>}
          {isDir && isOpen && kids && kids.length === 0 && (
            <div class="tree-empty" style={{ "--level": level }}>
              empty
            </div>
          )}
        </li>
      );
    });

  return (
    <div class="files">
      <div class="tree">
        <div class="pane-head">
          <span>Workspace</span>
          <button class="icon-btn" title="Refresh" aria-label="Refresh the file tree" onClick={() => void loadTree()}>
            <RefreshIcon size={14} />
          </button>
        </div>
        {treeError && <div class="list-note error">{treeError}</div>}
        {entries === null && !treeError && <div class="list-note">Loading…</div>}
        {entries?.length === 0 && <div class="list-note">The workspace is empty. Files the team writes appear here.</div>}
        {entries && entries.length > 0 && (
          <ul class="tree-list" role="tree" aria-label="Workspace files">
            {renderEntries(entries, 1)}
          </ul>
        )}
        {truncated && <div class="list-note">Only the first entries are listed.</div>}
      </div>
      <div class="viewer">
        {selected ? (
          <FileView path={selected} file={file} error={fileError} changed={marked.has(selected)} />
        ) : (
          <Empty icon={<FileIcon size={28} />} title="No file open">
            Pick a file in the tree, or a path in the chat.
          </Empty>
        )}
      </div>
    </div>
  );
}

const IMAGE_TYPES: Record<string, string> = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" };

function FileView({ path, file, error, changed }: { path: string; file: FileContent | null; error: string; changed: boolean }) {
  const ext = path.split(".").pop()?.toLowerCase() ?? "";
  const lines = useMemo(() => {
    if (!file || file.encoding === "base64") return null;
    const text = file.content ?? "";
    return text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  }, [file]);
  return (
    <div class="file-view">
      <div class="pane-head">
        <span class="file-path" title={path}>
          {path}
        </span>
        {file && (
          <span class="muted small">
            {fileSize(file.size)} · {changed ? "changed just now" : `modified ${relativeTime(new Date((file.modified_at ?? 0) * 1000).toISOString())}`}
          </span>
        )}
      </div>
      {error && <div class="list-note error">{error}</div>}
      {!file && !error && <div class="list-note">Loading…</div>}
      {file && file.encoding === "base64" && IMAGE_TYPES[ext] && (
        <div class="image-view">
          <img src={`data:${IMAGE_TYPES[ext]};base64,${file.content ?? ""}`} alt={path} />
        </div>
      )}
      {file && file.encoding === "base64" && !IMAGE_TYPES[ext] && <div class="list-note">Binary file ({fileSize(file.size)}); not shown.</div>}
      {lines && (
        <div class="code-view" data-testid="file-content">
          <pre class="gutter" aria-hidden="true">
            {lines.map((_, i) => i + 1).join("\n")}
          </pre>
          <pre class="source">{lines.join("\n")}</pre>
        </div>
      )}
    </div>
  );
}

export const filesPanel: WorkspacePanel = {
  id: "files",
  title: "Files",
  Icon: FileIcon,
  Component: FilesPanel,
};
