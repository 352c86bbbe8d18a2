package checkpoint

import (
	"os"

	"github.com/aymanbagabas/go-udiff"
)

// unified renders one file's change as a unified diff with git's labels (a/…, b/…; /dev/null for
// the side where the file does not exist).
func unified(p, status string, old, cur []byte) string {
	from, to := "a/"+p, "b/"+p
	switch status {
	case "added":
		from = os.DevNull
	case "deleted":
		to = os.DevNull
	}
	return udiff.Unified(from, to, string(old), string(cur))
}
