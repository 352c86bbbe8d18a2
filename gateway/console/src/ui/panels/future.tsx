// Panels whose API lands later (issue "workspaces"). Each shows what it will hold; filling one in is
// replacing its component, with the data fetched here and kept current by the events that announce
// new checkpoints.
import { Empty } from "./empty";
import { HistoryIcon } from "../icons";
import type { WorkspacePanel } from "./panel";

/** A checkpoint of /workspace, with the diff against its predecessor and a restore action. */
export interface Checkpoint {
  id: string;
  label: string;
  createdAt: string;
  filesChanged: number;
}

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
