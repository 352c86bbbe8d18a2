// Panels whose API lands later (issues "the team's hands" and "workspaces"). Each shows what it will
// hold; filling one in is replacing its component, with the data fetched here and kept current by
// the events that announce new artifacts or checkpoints.
import { Empty } from "./empty";
import { HistoryIcon, ImageIcon } from "../icons";
import type { WorkspacePanel } from "./panel";

/** An artifact as the panel will list it: a screenshot, a chart, a document. */
export interface Artifact {
  id: string;
  kind: "screenshot" | "chart" | "file";
  title: string;
  url: string;
  createdAt: string;
}

/** A checkpoint of /workspace, with the diff against its predecessor and a restore action. */
export interface Checkpoint {
  id: string;
  label: string;
  createdAt: string;
  filesChanged: number;
}

export const artifactsPanel: WorkspacePanel = {
  id: "artifacts",
  title: "Artifacts",
  Icon: ImageIcon,
  Component: () => (
    <Empty icon={<ImageIcon size={28} />} title="No artifacts yet">
      Screenshots of the app and charts the team makes will be collected here.
    </Empty>
  ),
};

export const checkpointsPanel: WorkspacePanel = {
  id: "checkpoints",
  title: "Checkpoints",
  Icon: HistoryIcon,
  Component: () => (
    <Empty icon={<HistoryIcon size={28} />} title="No checkpoints yet">
      Each step the team takes will be saved as a checkpoint of the workspace, with its diff and a way to restore it.
    </Empty>
  ),
};
