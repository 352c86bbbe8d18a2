// Package durable writes files so that a crash of the process or the host leaves either the old or
// the new content, never a torn file: the workspace marker and the checkpoint history are read back
// after exactly such crashes.
package durable

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFile replaces dir/name with data: a synced temporary file renamed over it, then the
// directory synced so the rename itself survives.
func WriteFile(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SyncFS flushes the whole file system holding dir in one call (syncfs(2)): cheaper than a sync per
// file when many were written, and it covers what other programs wrote too.
func SyncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
