package agent

import (
	"errors"
	"os"
	"strings"
	"syscall"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// fsErrnos are the file-system failures that follow from the caller's input or the state of the caller's own
// workspace. Each becomes a 4xx with a message of its own; an errno not listed is a fault of the agent or the
// host and stays internal.
var fsErrnos = []struct {
	errno syscall.Errno
	code  string
	what  string
}{
	{syscall.ENOENT, agentapi.CodeNotFound, "no such file or directory"},
	{syscall.EISDIR, agentapi.CodeIsDir, "is a directory"},
	{syscall.ENOTDIR, agentapi.CodeInvalid, "not a directory"},
	// A component over NAME_MAX (255 bytes) or the whole path over PATH_MAX.
	{syscall.ENAMETOOLONG, agentapi.CodeInvalid, "file name too long"},
	// A symlink loop, or a chain longer than os.Root follows.
	{syscall.ELOOP, agentapi.CodeInvalid, "too many levels of symbolic links"},
	// open(2) of a unix socket, or of a FIFO for writing with no reader (O_NONBLOCK).
	{syscall.ENXIO, agentapi.CodeInvalid, "not a regular file"},
	{syscall.EACCES, agentapi.CodeDenied, "permission denied"},
	{syscall.EPERM, agentapi.CodeDenied, "operation not permitted"},
	{syscall.EROFS, agentapi.CodeDenied, "read-only file system"},
	{syscall.ETXTBSY, agentapi.CodeFailed, "text file busy (a running executable)"},
	{syscall.ENOSPC, agentapi.CodeFailed, "no space left on the sandbox's disk"},
	{syscall.EDQUOT, agentapi.CodeFailed, "disk quota exceeded"},
	{syscall.EFBIG, agentapi.CodeTooLarge, "file too large"},
}

// fsError classifies err, returned by a file-system call on the caller's workspace-relative path rel, into an
// apiError. Its message names rel only: the errors of os.File (reads, writes, fstat) carry the host path of the
// workspace, which must never reach a caller.
func fsError(err error, rel string) error {
	var ae *apiError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case strings.Contains(err.Error(), "path escapes"): // os.Root's unexported errPathEscapes
		return errf(agentapi.CodeEscape, "%s: resolves outside /workspace", shortPath(rel))
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		for _, m := range fsErrnos {
			if m.errno == errno {
				return errf(m.code, "%s: %s", shortPath(rel), m.what)
			}
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return errf(agentapi.CodeNotFound, "%s: no such file or directory", shortPath(rel))
	}
	return err
}

// shortPath is rel as error messages show it: a caller's path can be 4 KiB long, and an error that repeats it
// whole buries the reason.
func shortPath(rel string) string {
	const limit = 120
	if len(rel) <= limit {
		return rel
	}
	cut := limit
	for cut > 0 && rel[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return rel[:cut] + "…"
}

// notRegular is the refusal of a file that is neither a regular file nor a directory.
func notRegular(rel string, mode os.FileMode) error {
	kind := "a special file"
	switch {
	case mode&os.ModeNamedPipe != 0:
		kind = "a FIFO"
	case mode&os.ModeSocket != 0:
		kind = "a unix socket"
	case mode&os.ModeDevice != 0:
		kind = "a device"
	}
	return errf(agentapi.CodeInvalid, "%s: is %s, not a regular file", shortPath(rel), kind)
}
