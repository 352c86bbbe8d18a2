package registry

import "slices"

// WithoutTools returns the team with the named tools taken out of every agent's list: tools whose
// engine is unavailable here (no browser, no search provider) are offered to no model.
func (r *Registry) WithoutTools(drop map[string]string) *Registry {
	if len(drop) == 0 {
		return r
	}
	out := &Registry{byName: map[string]Agent{}}
	for _, a := range r.agents {
		a.Tools = slices.DeleteFunc(slices.Clone(a.Tools), func(t string) bool { _, gone := drop[t]; return gone })
		out.agents = append(out.agents, a)
		out.byName[a.Name] = a
	}
	return out
}
