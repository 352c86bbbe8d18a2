import { useState } from "preact/hooks";
import type { Auth } from "../api/auth";
import { ApiError } from "../api/http";
import { DEMO_ACCOUNT } from "../config";
import { cls } from "./format";
import { LogoMark } from "./icons";

type Mode = "login" | "register";

export function Login({ auth }: { auth: Auth }) {
  const [mode, setMode] = useState<Mode>("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const notice =
    auth.signedOutReason === "expired"
      ? "Your sign-in expired. Please sign in again."
      : auth.signedOutReason === "logout"
        ? "You are signed out."
        : "";

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mode === "login") await auth.login(email.trim(), password);
      else await auth.register(email.trim(), password, name);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
      setBusy(false);
    }
  };

  const useDemo = () => {
    setMode("login");
    setEmail(DEMO_ACCOUNT.email);
    setPassword(DEMO_ACCOUNT.password);
    setError("");
  };

  return (
    <div class="login-page">
      <div class="login-card">
        <div class="login-brand">
          <LogoMark size={36} />
          <div>
            <h1>MGX</h1>
            <p>Your AI software team</p>
          </div>
        </div>
        <div class="seg" role="tablist">
          {(["login", "register"] as const).map((m) => (
            <button
              key={m}
              role="tab"
              type="button"
              aria-selected={mode === m}
              class={cls("seg-btn", mode === m && "on")}
              onClick={() => {
                setMode(m);
                setError("");
              }}
            >
              {m === "login" ? "Sign in" : "Create account"}
            </button>
          ))}
        </div>
        <form onSubmit={submit} class="form">
          {notice && !error && <div class="form-note">{notice}</div>}
          {mode === "register" && (
            <label>
              <span>Name</span>
              <input value={name} onInput={(e) => setName(e.currentTarget.value)} autocomplete="name" placeholder="Optional" />
            </label>
          )}
          <label>
            <span>Email</span>
            <input
              type="email"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
              autocomplete="username"
              autofocus
            />
          </label>
          <label>
            <span>Password</span>
            <input
              type="password"
              required
              minLength={mode === "register" ? 8 : undefined}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              autocomplete={mode === "login" ? "current-password" : "new-password"}
            />
          </label>
          {error && (
            <div class="form-error" role="alert">
              {error}
            </div>
          )}
          <button class="btn primary wide" type="submit" disabled={busy}>
            {busy ? "Please wait…" : mode === "login" ? "Sign in" : "Create account"}
          </button>
        </form>
        <div class="demo-hint">
          <span>
            Demo account: <code>{DEMO_ACCOUNT.email}</code> / <code>{DEMO_ACCOUNT.password}</code>
          </span>
          <button type="button" class="link-btn" onClick={useDemo}>
            Use it
          </button>
        </div>
      </div>
    </div>
  );
}
