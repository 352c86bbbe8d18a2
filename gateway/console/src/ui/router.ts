// Two kinds of page: / (start a session) and /s/<session id>. The gateway answers every such path
// with index.html, so a reload or a shared link lands on the same page.
import { useEffect, useState } from "preact/hooks";

export type Route = { page: "home" } | { page: "session"; id: string };

export function parse(pathname: string): Route {
  const m = /^\/s\/([^/]+)\/?$/.exec(pathname);
  return m ? { page: "session", id: decodeURIComponent(m[1]!) } : { page: "home" };
}

export function href(route: Route): string {
  return route.page === "session" ? `/s/${encodeURIComponent(route.id)}` : "/";
}

const CHANGE = "mgx:navigate";

export function navigate(route: Route, replace = false): void {
  const url = href(route);
  if (url === location.pathname) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  dispatchEvent(new Event(CHANGE));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parse(location.pathname));
    addEventListener("popstate", update);
    addEventListener(CHANGE, update);
    return () => {
      removeEventListener("popstate", update);
      removeEventListener(CHANGE, update);
    };
  }, []);
  return route;
}

/** Props for an <a> that navigates inside the console, keeping ctrl/middle-click for new tabs. */
export function link(route: Route) {
  return {
    href: href(route),
    onClick: (e: MouseEvent) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(route);
    },
  };
}
