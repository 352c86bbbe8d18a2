package workspace

// heavyDirs are directories that hold dependencies, version-control data, caches or build output:
// large, generated, and not what anyone edits. Change tracking reports them as a whole without
// descending, and searches and listings for models skip them unless asked.
var heavyDirs = map[string]bool{
	"node_modules": true, ".git": true, ".hg": true, ".svn": true,
	"dist": true, "build": true, "out": true, ".next": true, ".nuxt": true, ".svelte-kit": true, ".output": true,
	".vite": true, ".turbo": true, ".parcel-cache": true, ".cache": true, "coverage": true, ".nyc_output": true,
	"__pycache__": true, ".venv": true, "venv": true, ".mypy_cache": true, ".pytest_cache": true, ".ruff_cache": true,
	".tox": true, "target": true, ".gradle": true, ".pnpm-store": true, ".yarn": true, "bower_components": true,
}

// Heavy reports whether a directory name is a dependency, VCS, cache or build-output folder.
func Heavy(name string) bool { return heavyDirs[name] }

// HeavyNames lists the names Heavy recognises.
func HeavyNames() []string {
	out := make([]string, 0, len(heavyDirs))
	for n := range heavyDirs {
		out = append(out, n)
	}
	return out
}
