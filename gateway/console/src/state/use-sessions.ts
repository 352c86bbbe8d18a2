// The signed-in user's sessions, newest first (the API's order; new ones are put in front).
import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api } from "../api/api";
import type { Session } from "../api/types";

export function useSessions(api: Api) {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState("");

  const reload = useCallback(async () => {
    try {
      setSessions(await api.sessions());
      setError("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [api]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const add = useCallback((s: Session) => setSessions((list) => [s, ...(list ?? []).filter((x) => x.id !== s.id)]), []);
  const remove = useCallback((id: string) => setSessions((list) => (list ?? []).filter((x) => x.id !== id)), []);

  return { sessions, error, reload, add, remove };
}
