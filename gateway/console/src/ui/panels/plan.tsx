// The plan Mike keeps, with each task's state. Today it is folded from plan and task events (see
// state/session.ts); a GET /api/sessions/{id}/plan seed will land in use-session.ts.
import { person } from "../../agents";
import type { Task } from "../../state/session";
import { Avatar } from "../avatar";
import { cls } from "../format";
import { CheckIcon, CircleIcon, PlanIcon, XIcon } from "../icons";
import { Empty } from "./empty";
import type { PanelProps, WorkspacePanel } from "./panel";

const LABEL: Record<string, string> = {
  todo: "To do",
  in_progress: "In progress",
  done: "Done",
  failed: "Failed",
  blocked: "Blocked",
  skipped: "Skipped",
};

function StatusMark({ status }: { status: string }) {
  if (status === "done") return <CheckIcon size={14} />;
  if (status === "failed") return <XIcon size={14} />;
  if (status === "in_progress") return <span class="spinner" />;
  return <CircleIcon size={14} />;
}

function PlanPanel({ view }: PanelProps) {
  const plan = view.plan;
  if (!plan || plan.tasks.length === 0) {
    return (
      <Empty icon={<PlanIcon size={28} />} title="No plan yet">
        Mike writes a plan when the team starts on a request; its tasks and their progress show here.
      </Empty>
    );
  }
  const done = plan.tasks.filter((t) => t.status === "done").length;
  const pct = Math.round((done / plan.tasks.length) * 100);
  return (
    <div class="plan">
      <div class="plan-head">
        <div>
          <div class="plan-title">{plan.finished ? "Plan finished" : "Plan"}</div>
          <div class="muted small">
            {done} of {plan.tasks.length} tasks done
          </div>
        </div>
        <div class="progress" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
          <div class="progress-bar" style={{ width: `${pct}%` }} />
        </div>
      </div>
      <ol class="tasks">
        {plan.tasks.map((t) => (
          <TaskRow key={t.id} task={t} />
        ))}
      </ol>
    </div>
  );
}

function TaskRow({ task }: { task: Task }) {
  const who = task.assignee ? person(task.assignee) : null;
  return (
    <li class={cls("task", task.status)} data-task={task.id} data-status={task.status}>
      <span class="task-mark">
        <StatusMark status={task.status} />
      </span>
      <div class="task-body">
        <div class="task-title">{task.title || task.id}</div>
        {task.note && <div class="task-note">{task.note}</div>}
        {task.dependsOn.length > 0 && <div class="task-note">after {task.dependsOn.join(", ")}</div>}
      </div>
      <span class="task-status">{LABEL[task.status] ?? task.status}</span>
      {who && <Avatar who={who} size={22} />}
    </li>
  );
}

export const planPanel: WorkspacePanel = {
  id: "plan",
  title: "Plan",
  Icon: PlanIcon,
  badge: (v) => {
    const open = v.plan?.tasks.filter((t) => t.status !== "done").length ?? 0;
    return open > 0 ? open : undefined;
  },
  Component: PlanPanel,
};
