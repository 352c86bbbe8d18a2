// Artifact bytes shown in the page. An artifact is only served to its owner, with the bearer header;
// an <img src> cannot send one, and a token in a URL would leak into history, logs and Referers. So
// each artifact is fetched once with the header and shown from a blob: URL, which stays valid for
// the page's life (artifacts never change) and is revoked on sign-out.
import { useEffect, useState } from "preact/hooks";
import type { Api } from "../api/api";

const urls = new Map<string, Promise<string>>();
const made = new Set<string>();

/** The blob: URL of an artifact's bytes, fetched on first use. */
export function artifactURL(api: Api, sessionId: string, artifactId: string): Promise<string> {
  const key = `${sessionId}/${artifactId}`;
  let p = urls.get(key);
  if (!p) {
    p = api.artifactBlob(sessionId, artifactId).then((blob) => {
      const u = URL.createObjectURL(blob);
      made.add(u);
      return u;
    });
    // A failed fetch is not remembered: the next view tries again.
    p.catch(() => urls.delete(key));
    urls.set(key, p);
  }
  return p;
}

/** On sign-out: the next login sees nothing of this one's artifacts. */
export function forgetArtifactURLs(): void {
  for (const u of made) URL.revokeObjectURL(u);
  made.clear();
  urls.clear();
}

/** An artifact's blob: URL for a component, with the error when it could not be fetched. */
export function useArtifactURL(api: Api, sessionId: string, artifactId: string): { url: string; error: string } {
  const [state, setState] = useState({ url: "", error: "" });
  useEffect(() => {
    let alive = true;
    setState({ url: "", error: "" });
    artifactURL(api, sessionId, artifactId).then(
      (url) => alive && setState({ url, error: "" }),
      (err: unknown) => alive && setState({ url: "", error: err instanceof Error ? err.message : String(err) }),
    );
    return () => {
      alive = false;
    };
  }, [api, sessionId, artifactId]);
  return state;
}
