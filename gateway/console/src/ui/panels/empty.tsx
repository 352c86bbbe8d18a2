import type { ComponentChildren } from "preact";

export function Empty({ icon, title, children }: { icon: ComponentChildren; title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <div class="empty-icon">{icon}</div>
      <div class="empty-title">{title}</div>
      {children && <div class="empty-text">{children}</div>}
    </div>
  );
}
