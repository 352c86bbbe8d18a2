// The workspace beside the chat is a row of panels. Each is self-contained behind this interface:
// adding one (artifacts, checkpoints…) is a component and an entry in PANELS (workspace.tsx).
import type { FunctionComponent } from "preact";
import type { SessionView } from "../../state/session";

export interface PanelProps {
  sessionId: string;
  view: SessionView;
  /** The panel is the one on screen (hidden panels stay mounted, so a preview keeps its state). */
  active: boolean;
  /** What to show, asked for from the chat (a file's path, an artifact's id); nonce changes on every ask. */
  focus: { path: string; nonce: number } | null;
  /** The panel changed files itself (a restore): the files panel re-lists and re-reads these paths. */
  onFilesChanged: (paths: readonly string[]) => void;
}

export interface WorkspacePanel {
  id: string;
  title: string;
  Icon: FunctionComponent<{ size?: number }>;
  /** A short count on the tab (tasks left, new artifacts); undefined shows none. */
  badge?: (view: SessionView) => string | number | undefined;
  Component: FunctionComponent<PanelProps>;
}
