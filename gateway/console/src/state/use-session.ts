// One open session: its record, its view folded from the event stream, and the actions on it.
// Views are kept per session for the life of the page, so switching back to a session resumes its
// stream after the last sequence instead of replaying the log again.
import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api } from "../api/api";
import { EventStream, type StreamStatus } from "../api/events";
import { forgetArtifactURLs } from "./artifact-urls";
import { ApiError } from "../api/http";
import type { Session } from "../api/types";
import { applyEvents, applyRun, emptyView, filesTouched, fromHistory, messageSent, seedPlan, type ChatItem, type SessionView } from "./session";

export interface OpenSession {
  session: Session | null;
  view: SessionView;
  /** Stored messages, shown until the stream has replayed the log. */
  history: ChatItem[] | null;
  stream: StreamStatus;
  /** Why the session could not be loaded. */
  error: string;
  gone: boolean;
}

const views = new Map<string, SessionView>();

export function forgetSession(id: string): void {
  views.delete(id);
}

/** On sign-out: nothing of one login stays in memory for the next. */
export function forgetAllSessions(): void {
  views.clear();
  forgetArtifactURLs();
}

export function useSession(api: Api, id: string) {
  const [state, setState] = useState<OpenSession>(() => fresh(id));

  // Views change from the stream and from actions; both go through here so the cache stays current.
  const update = useCallback(
    (fn: (v: SessionView) => SessionView) => {
      setState((s) => {
        const view = fn(s.view);
        views.set(id, view);
        return view === s.view ? s : { ...s, view };
      });
    },
    [id],
  );

  useEffect(() => {
    setState(fresh(id));
    let alive = true;
    const patch = (p: Partial<OpenSession>) => alive && setState((s) => ({ ...s, ...p }));

    api.session(id).then(
      (session) => patch({ session, history: fromHistory(session.messages ?? []) }),
      (err) => patch(err instanceof ApiError && err.status === 404 ? { gone: true } : { error: errText(err) }),
    );
    // A run that is queued but has not started has no event yet; the API knows it.
    api.run(id).then(
      (run) => alive && update((v) => applyRun(v, run)),
      () => {},
    );
    // The plan as the team last left it, shown before the log has been replayed; plan and task
    // events update it from then on.
    api.plan(id).then(
      (plan) => alive && update((v) => seedPlan(v, plan)),
      () => {},
    );

    const stream = new EventStream({
      sessionId: id,
      afterSeq: views.get(id)?.lastSeq ?? 0,
      auth: api.auth,
      onEvents: (evs) => alive && update((v) => applyEvents(v, evs)),
      onStatus: (stream) => patch(stream === "gone" ? { stream, gone: true } : { stream }),
      probe: async () => {
        try {
          await api.session(id);
          return "ok";
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) return "gone";
          if (!api.auth.signedIn) return "signed-out";
          return "unknown";
        }
      },
    });
    stream.start();
    return () => {
      alive = false;
      stream.stop();
    };
  }, [api, id, update]);

  /** Sends a message, or the answer when the run waits for one. Throws ApiError. */
  const send = useCallback(
    async (content: string) => {
      const waiting = state.view.run?.status === "waiting";
      const res = waiting ? await api.answer(id, content) : await api.postMessage(id, content);
      update((v) => messageSent(v, res, waiting));
    },
    [api, id, state.view.run?.status, update],
  );

  const cancel = useCallback(() => api.cancel(id), [api, id]);

  /** The console changed files itself (a restore): panels showing them reload. */
  const touchFiles = useCallback((paths: readonly string[]) => update((v) => filesTouched(v, paths)), [update]);

  return { ...state, send, cancel, touchFiles };
}

function fresh(id: string): OpenSession {
  return { session: null, view: views.get(id) ?? emptyView(), history: null, stream: "connecting", error: "", gone: false };
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
