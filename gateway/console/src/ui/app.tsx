import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api } from "../api/api";
import { forgetAllSessions, forgetSession } from "../state/use-session";
import { useSessions } from "../state/use-sessions";
import { ApiContext } from "./context";
import { Landing } from "./landing";
import { Login } from "./login";
import { navigate, useRoute } from "./router";
import { SessionScreen } from "./session-screen";
import { Sidebar } from "./sidebar";
import { Toasts, toastError } from "./toast";

export function App({ api }: { api: Api }) {
  const [signedIn, setSignedIn] = useState(api.auth.signedIn);
  useEffect(
    () =>
      api.auth.subscribe(() => {
        setSignedIn(api.auth.signedIn);
        if (!api.auth.signedIn) forgetAllSessions();
      }),
    [api],
  );
  return (
    <ApiContext.Provider value={api}>
      {signedIn ? <Shell api={api} /> : <Login auth={api.auth} />}
      <Toasts />
    </ApiContext.Provider>
  );
}

function Shell({ api }: { api: Api }) {
  const route = useRoute();
  const { sessions, error, add, remove, reload } = useSessions(api);
  const currentId = route.page === "session" ? route.id : "";

  useEffect(() => {
    document.title = "MGX";
  }, [route]);

  const onDelete = useCallback(
    async (id: string) => {
      // Leave the session first: its screen (event stream, panels polling the sandbox) ends before
      // the session does, instead of asking for what is being deleted. A failure brings it back.
      const open = id === currentId;
      if (open) navigate({ page: "home" });
      try {
        await api.deleteSession(id);
      } catch (err) {
        toastError(err, "Could not delete the session");
        if (open) navigate({ page: "session", id });
        return;
      }
      remove(id);
      forgetSession(id);
    },
    [api, currentId, remove],
  );

  const onGone = useCallback(
    (id: string) => {
      remove(id);
      forgetSession(id);
      void reload();
    },
    [remove, reload],
  );

  return (
    <div class="app">
      <Sidebar sessions={sessions} error={error} currentId={currentId} email={api.auth.email} onDelete={onDelete} onLogout={() => void api.auth.logout()} />
      <main class="main">{route.page === "session" ? <SessionScreen key={route.id} id={route.id} onGone={onGone} /> : <Landing onCreated={add} />}</main>
    </div>
  );
}
