import { useState } from "preact/hooks";
import { person } from "../agents";
import type { Session } from "../api/types";
import { Avatar } from "./avatar";
import { Composer } from "./composer";
import { useApi } from "./context";
import { titleFrom } from "./format";
import { navigate } from "./router";
import { toastError } from "./toast";

const EXAMPLES = [
  "Build a landing page for a coffee shop with a menu and opening hours",
  "Make a todo app with local storage",
  "Create a small dashboard that charts random data",
];

const TEAM = ["mike", "emma", "bob", "alex", "david", "iris"].map(person);

/** The start page: the first request creates the session (titled after it) and sends it. */
export function Landing({ onCreated }: { onCreated: (s: Session) => void }) {
  const api = useApi();
  const [phase, setPhase] = useState<"" | "creating">("");
  const [seed, setSeed] = useState(0);
  const [prefill, setPrefill] = useState("");

  const start = async (text: string): Promise<boolean> => {
    setPhase("creating");
    let session: Session;
    try {
      session = await api.createSession(titleFrom(text));
    } catch (err) {
      toastError(err, "Could not create the session");
      setPhase("");
      return false;
    }
    onCreated(session);
    try {
      await api.postMessage(session.id ?? "", text);
    } catch (err) {
      toastError(err, "The session was created, but the message was not sent");
    }
    navigate({ page: "session", id: session.id ?? "" });
    return true;
  };

  return (
    <div class="landing">
      <div class="landing-inner">
        <div class="team-row" aria-hidden="true">
          {TEAM.map((p) => (
            <Avatar key={p.id} who={p} size={40} />
          ))}
        </div>
        <h1>What should the team build?</h1>
        <p class="muted">
          Mike plans the work, Alex writes the code in the session's own sandbox, and you watch it happen — files, processes
          and a live preview included.
        </p>
        <Composer
          key={seed}
          large
          autofocus
          label="Describe what to build"
          initial={prefill}
          placeholder="Describe an app, a page, a script…"
          disabled={phase === "creating"}
          onSubmit={start}
          hint={phase === "creating" ? "Preparing the session's sandbox…" : "Enter to start · Shift+Enter for a new line"}
        />
        <div class="examples">
          {EXAMPLES.map((x) => (
            <button
              key={x}
              class="chip"
              type="button"
              onClick={() => {
                setPrefill(x);
                setSeed((n) => n + 1);
              }}
            >
              {x}
            </button>
          ))}
        </div>
      </div>
    </div>
  );
}
