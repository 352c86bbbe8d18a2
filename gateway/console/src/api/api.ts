// The calls the console makes, typed by the generated schema. Every function throws ApiError with
// the server's detail on failure (see http.ts).
import type { Auth } from "./auth";
import { newClient, ok, toApiError, type ApiClient } from "./http";
import { ndjson } from "./ndjson";
import type { Artifact, CheckpointDiff, CheckpointPage, CreatedCheckpoint, FileTree, Plan, Preview, Process, Restored, Session } from "./types";

export class Api {
  readonly client: ApiClient;

  constructor(readonly auth: Auth) {
    this.client = newClient(auth.middleware());
  }

  me() {
    return ok(this.client.GET("/api/auth/me"));
  }

  agents() {
    return ok(this.client.GET("/api/agents"));
  }

  // ---- sessions and chat

  sessions(): Promise<Session[]> {
    return ok(this.client.GET("/api/sessions"));
  }

  createSession(title: string): Promise<Session> {
    return ok(this.client.POST("/api/sessions", { body: { title } }));
  }

  session(id: string): Promise<Session> {
    return ok(this.client.GET("/api/sessions/{id}", { params: { path: { id } } }));
  }

  async deleteSession(id: string): Promise<void> {
    await ok(this.client.DELETE("/api/sessions/{id}", { params: { path: { id } } }));
  }

  postMessage(sessionId: string, content: string) {
    return ok(this.client.POST("/api/chat/messages", { body: { session_id: sessionId, content } }));
  }

  answer(sessionId: string, content: string) {
    return ok(this.client.POST("/api/sessions/{session_id}/answer", { params: { path: { session_id: sessionId } }, body: { content } }));
  }

  cancel(sessionId: string) {
    return ok(this.client.POST("/api/sessions/{session_id}/cancel", { params: { path: { session_id: sessionId } }, body: {} }));
  }

  /** The session's plan as the team last left it (no tasks before the first plan). */
  plan(sessionId: string): Promise<Plan> {
    return ok(this.client.GET("/api/sessions/{session_id}/plan", { params: { path: { session_id: sessionId } } }));
  }

  /** The files the team's tools made for the user (screenshots, charts), oldest first. */
  async artifacts(sessionId: string): Promise<Artifact[]> {
    const list = await ok(this.client.GET("/api/sessions/{session_id}/artifacts", { params: { path: { session_id: sessionId } } }));
    return (list ?? []) as Artifact[];
  }

  /**
   * An artifact's bytes. They are fetched with the bearer header and shown from a blob: URL, so the
   * access token never goes into an <img src> (nor into history, logs or a Referer).
   */
  async artifactBlob(sessionId: string, artifactId: string, signal?: AbortSignal): Promise<Blob> {
    const res = await ok(
      this.client.GET("/api/sessions/{session_id}/artifacts/{artifact_id}", {
        params: { path: { session_id: sessionId, artifact_id: artifactId } },
        parseAs: "blob",
        signal,
      }),
    );
    return res as unknown as Blob;
  }

  /** The session's latest run, or null when it has had none. */
  async run(sessionId: string) {
    const res = await this.client.GET("/api/sessions/{session_id}/run", { params: { path: { session_id: sessionId } } });
    if (res.response.status === 404) return null;
    return ok(Promise.resolve(res));
  }

  // ---- workspace

  fileTree(sessionId: string, root = "", depth = 2): Promise<FileTree> {
    return ok(
      this.client.GET("/api/files/{session_id}/tree", {
        params: { path: { session_id: sessionId }, query: { root, depth, include_hidden: false } },
      }),
    );
  }

  readFile(sessionId: string, path: string) {
    return ok(this.client.GET("/api/files/{session_id}", { params: { path: { session_id: sessionId }, query: { path } } }));
  }

  preview(sessionId: string): Promise<Preview> {
    return ok(this.client.GET("/api/sandbox/preview/{session_id}", { params: { path: { session_id: sessionId } } }));
  }

  /** Revokes every preview URL of the session handed out so far and lists fresh ones. */
  rotatePreview(sessionId: string): Promise<Preview> {
    return ok(this.client.POST("/api/sandbox/preview/{session_id}/rotate", { params: { path: { session_id: sessionId } }, body: {} }));
  }

  async processes(sessionId: string): Promise<Process[]> {
    const r = await ok(this.client.GET("/api/sandbox/{session_id}/processes", { params: { path: { session_id: sessionId } } }));
    return r.processes ?? [];
  }

  async stopProcess(sessionId: string, name: string): Promise<void> {
    await ok(
      this.client.POST("/api/sandbox/{session_id}/processes/{name}/signal", {
        params: { path: { session_id: sessionId, name } },
        body: { signal: "TERM" },
      }),
    );
  }

  /** The workspace's checkpoints, newest first; `before` pages to older ones (more says whether any remain). */
  checkpoints(sessionId: string, before = "", limit = 50): Promise<CheckpointPage> {
    return ok(
      this.client.GET("/api/sandbox/{session_id}/checkpoints", {
        params: { path: { session_id: sessionId }, query: { limit, ...(before ? { before } : {}) } },
      }),
    );
  }

  /** Snapshots the workspace now; when nothing changed, the latest checkpoint comes back with created false. */
  createCheckpoint(sessionId: string, message = ""): Promise<CreatedCheckpoint> {
    return ok(this.client.POST("/api/sandbox/{session_id}/checkpoints", { params: { path: { session_id: sessionId } }, body: { message } }));
  }

  /**
   * What changed from checkpoint `from` to `against` (another checkpoint, or the workspace now when
   * empty), as a unified diff per file; `path` narrows it to one file or directory.
   */
  diffCheckpoint(sessionId: string, from: string, against = "", path = "", signal?: AbortSignal): Promise<CheckpointDiff> {
    const query: { against?: string; path?: string } = {};
    if (against) query.against = against;
    if (path) query.path = path;
    return ok(
      this.client.GET("/api/sandbox/{session_id}/checkpoints/{checkpoint_id}/diff", {
        params: { path: { session_id: sessionId, checkpoint_id: from }, query },
        signal,
      }),
    );
  }

  /** Puts the workspace (or one path) back as it was in the checkpoint; `before` undoes it. */
  restoreCheckpoint(sessionId: string, checkpointId: string, path = ""): Promise<Restored> {
    return ok(
      this.client.POST("/api/sandbox/{session_id}/checkpoints/{checkpoint_id}/restore", {
        params: { path: { session_id: sessionId, checkpoint_id: checkpointId } },
        body: { path },
      }),
    );
  }

  /**
   * Streams a process's log from offset, following it while the process runs. grpc-gateway sends a
   * server stream as newline-delimited JSON: `{"result": {data (base64), next_offset}}` per message,
   * or `{"error": {...}}` when the stream fails midway. Resolves with the offset to resume from
   * when the stream ends (the process exited, or the server closed it).
   */
  async followLogs(
    sessionId: string,
    name: string,
    offset: number,
    onData: (bytes: Uint8Array, nextOffset: number) => void,
    signal: AbortSignal,
  ): Promise<number> {
    const res = await ok(
      this.client.GET("/api/sandbox/{session_id}/processes/{name}/logs", {
        params: { path: { session_id: sessionId, name }, query: { offset: String(offset), follow: true } },
        parseAs: "stream",
        signal,
      }),
    );
    if (!res) return offset;
    for await (const line of ndjson(res)) {
      const msg = line as { result?: { data?: string; next_offset?: string }; error?: unknown };
      if (msg.error) throw toApiError(200, msg);
      if (!msg.result) continue;
      const next = Number(msg.result.next_offset ?? offset);
      onData(base64Bytes(msg.result.data ?? ""), next);
      offset = next;
    }
    return offset;
  }
}

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
