// The team as people see it. The wire names an agent either by its id ("mike") or by its display
// name ("Mike"); both resolve to the same person here.

export interface Person {
  /** Lowercase id: "mike". */
  id: string;
  /** Display name: "Mike". */
  name: string;
  role: string;
  /** Avatar colour (also the accent of the agent's lines). */
  color: string;
}

const TEAM: readonly Person[] = [
  { id: "mike", name: "Mike", role: "Team Leader", color: "#4f46e5" },
  { id: "emma", name: "Emma", role: "Product Manager", color: "#db2777" },
  { id: "bob", name: "Bob", role: "Architect", color: "#d97706" },
  { id: "alex", name: "Alex", role: "Engineer", color: "#059669" },
  { id: "david", name: "David", role: "Data Analyst", color: "#0284c7" },
  { id: "iris", name: "Iris", role: "Researcher", color: "#9333ea" },
];

const byId = new Map(TEAM.map((p) => [p.id, p]));

/** Resolves an event's or message's agent (or sender) to a person; unknown names keep their spelling. */
export function person(agentOrSender: string | undefined): Person {
  const raw = (agentOrSender ?? "").trim();
  const id = raw.toLowerCase();
  const known = byId.get(id);
  if (known) return known;
  if (id === "user") return { id: "user", name: "You", role: "", color: "#475569" };
  const name = raw ? raw[0]!.toUpperCase() + raw.slice(1) : "Agent";
  return { id: id || "agent", name, role: "", color: colorOf(id) };
}

/** The speaker of a message: its agent when set, else its sender ("mike", "user"). */
export function speaker(sender: string | undefined, agent: string | undefined): Person {
  return person(agent || sender);
}

/** A stable colour for an agent the console does not know yet. */
function colorOf(id: string): string {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 55% 42%)`;
}
