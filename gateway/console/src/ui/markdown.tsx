// Agents write Markdown. micromark renders CommonMark to HTML with raw HTML escaped and unsafe link
// protocols (javascript:, data:) dropped, so its output is safe to insert; the page's CSP forbids
// inline script besides.
import { micromark } from "micromark";
import { useLayoutEffect, useMemo, useRef } from "preact/hooks";

export function Markdown({ text, class: c }: { text: string; class?: string }) {
  const html = useMemo(() => micromark(text), [text]);
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    // Links leave the console in a new tab and tell the target nothing about it.
    for (const a of ref.current?.querySelectorAll("a") ?? []) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
  }, [html]);
  return <div ref={ref} class={c ? `md ${c}` : "md"} dangerouslySetInnerHTML={{ __html: html }} />;
}
