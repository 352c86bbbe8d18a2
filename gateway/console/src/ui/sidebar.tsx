import { useEffect, useState } from "preact/hooks";
import type { Session } from "../api/types";
import { cls, relativeTime, sessionTitle } from "./format";
import { LogoMark, LogoutIcon, PlusIcon, TrashIcon } from "./icons";
import { link } from "./router";

interface Props {
  sessions: Session[] | null;
  error: string;
  currentId: string;
  email: string;
  onDelete: (id: string) => Promise<void>;
  onLogout: () => void;
}

export function Sidebar({ sessions, error, currentId, email, onDelete, onLogout }: Props) {
  return (
    <aside class="sidebar">
      <div class="brand">
        <LogoMark size={26} />
        <span>MGX</span>
      </div>
      <a class="btn primary new-session" {...link({ page: "home" })}>
        <PlusIcon size={16} /> New session
      </a>
      <nav class="session-list" aria-label="Sessions">
        {error && <div class="list-note error">{error}</div>}
        {sessions === null && !error && <div class="list-note">Loading sessions…</div>}
        {sessions?.length === 0 && <div class="list-note">No sessions yet. Start one and the team gets to work.</div>}
        {sessions?.map((s) => (
          <SessionRow key={s.id} session={s} current={s.id === currentId} onDelete={onDelete} />
        ))}
      </nav>
      <div class="account">
        <div class="account-avatar" aria-hidden="true">
          {(email[0] ?? "?").toUpperCase()}
        </div>
        <span class="account-email" title={email}>
          {email}
        </span>
        <button class="icon-btn" title="Sign out" aria-label="Sign out" onClick={onLogout}>
          <LogoutIcon size={16} />
        </button>
      </div>
    </aside>
  );
}

function SessionRow({ session, current, onDelete }: { session: Session; current: boolean; onDelete: (id: string) => Promise<void> }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!confirming) return;
    const t = setTimeout(() => setConfirming(false), 4000);
    return () => clearTimeout(t);
  }, [confirming]);
  const id = session.id ?? "";
  return (
    <div class={cls("session-row", current && "current", busy && "busy")}>
      <a class="session-link" {...link({ page: "session", id })} aria-current={current ? "page" : undefined}>
        <span class="session-title">{sessionTitle(session.title)}</span>
        <span class="session-time">{relativeTime(session.created_at)}</span>
      </a>
      {confirming ? (
        <button
          class="btn danger tiny"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await onDelete(id);
            } finally {
              setBusy(false);
              setConfirming(false);
            }
          }}
        >
          Delete
        </button>
      ) : (
        <button class="icon-btn row-action" title="Delete session" aria-label={`Delete ${sessionTitle(session.title)}`} onClick={() => setConfirming(true)}>
          <TrashIcon size={15} />
        </button>
      )}
    </div>
  );
}
