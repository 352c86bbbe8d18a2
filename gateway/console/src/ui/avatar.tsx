import type { Person } from "../agents";

// Preact applies a style object through the CSSOM, which the CSP (no inline style attributes) allows.
export function Avatar({ who, size = 32 }: { who: Person; size?: number }) {
  return (
    <span class="avatar" title={who.role ? `${who.name} · ${who.role}` : who.name} style={{ "--who": who.color, "--size": `${size}px` }}>
      {who.name[0]}
    </span>
  );
}
