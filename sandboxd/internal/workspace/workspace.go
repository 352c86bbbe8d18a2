// Package workspace confines caller-supplied paths to a sandbox's /workspace.
//
// Callers name files and working directories relative to /workspace (an
// absolute path is accepted only when it lies under /workspace). Clean turns
// such a path into a clean relative path or refuses it. This is the lexical
// half of confinement; the other half — symlinks created inside the sandbox —
// can only be judged where the files live, so the sandbox-agent resolves every
// path through an os.Root and sandboxd never touches workspace files itself.
package workspace

import (
	"errors"
	"path"
	"strings"
)

// Root is the workspace directory as seen inside a sandbox.
const Root = "/workspace"

// ErrEscape means a path leaves the workspace.
var ErrEscape = errors.New("path leaves /workspace")

// ErrInvalid means a path is malformed (NUL byte).
var ErrInvalid = errors.New("invalid path")

// Clean returns p relative to /workspace, cleaned, with "." for the workspace
// itself. "" means the workspace. Any ".." that would climb above the
// workspace, and absolute paths outside it, are ErrEscape.
func Clean(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", ErrInvalid
	}
	if p == "" {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") {
		c := path.Clean(p)
		if c == Root {
			return ".", nil
		}
		if !strings.HasPrefix(c, Root+"/") {
			return "", ErrEscape
		}
		return strings.TrimPrefix(c, Root+"/"), nil
	}
	// Refuse rather than clamp: "a/../../etc" cleaned relative to the
	// workspace would silently become "etc" if we joined with "/" first.
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", ErrEscape
	}
	return c, nil
}

// Display returns the path a response shows for the clean relative path rel.
func Display(rel string) string {
	if rel == "." {
		return ""
	}
	return rel
}
