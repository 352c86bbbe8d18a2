package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// volumesDir holds the local driver's volumes, beside the sandboxes' own directories in the run
// directory: a volume is a directory that no sandbox's removal touches.
const volumesDir = "volumes"

// volumeMeta is what the driver remembers of a volume, in its directory beside the data.
type volumeMeta struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
}

func (d *Driver) volumeDir(name string) string  { return filepath.Join(d.opts.RunDir, volumesDir, name) }
func (d *Driver) volumeData(name string) string { return filepath.Join(d.volumeDir(name), "data") }

func validVolumeName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\x00") && name != "." && name != ".."
}

// CreateVolume implements driver.Driver.
func (d *Driver) CreateVolume(_ context.Context, name string, labels map[string]string) (driver.Volume, error) {
	if !validVolumeName(name) {
		return driver.Volume{}, fmt.Errorf("invalid volume name %q", name)
	}
	if err := os.MkdirAll(filepath.Join(d.opts.RunDir, volumesDir), 0o700); err != nil {
		return driver.Volume{}, err
	}
	// Mkdir of the volume's own directory is the atomic claim of its name.
	if err := os.Mkdir(d.volumeDir(name), 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeExists, name)
		}
		return driver.Volume{}, err
	}
	all := map[string]string{driver.LabelManaged: "1"}
	for k, v := range labels {
		all[k] = v
	}
	m := volumeMeta{Name: name, Labels: all, Created: time.Now().UTC()}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(d.volumeDir(name), "volume.json"), b, 0o600); err != nil {
		_ = os.RemoveAll(d.volumeDir(name))
		return driver.Volume{}, err
	}
	if err := os.Mkdir(d.volumeData(name), 0o755); err != nil {
		_ = os.RemoveAll(d.volumeDir(name))
		return driver.Volume{}, err
	}
	return driver.Volume(m), nil
}

// InspectVolume implements driver.Driver.
func (d *Driver) InspectVolume(_ context.Context, name string) (driver.Volume, error) {
	if !validVolumeName(name) {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeNotFound, name)
	}
	b, err := os.ReadFile(filepath.Join(d.volumeDir(name), "volume.json"))
	if errors.Is(err, os.ErrNotExist) {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeNotFound, name)
	}
	if err != nil {
		return driver.Volume{}, err
	}
	var m volumeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return driver.Volume{}, fmt.Errorf("volume %s: %w", name, err)
	}
	if _, err := os.Stat(d.volumeData(name)); err != nil {
		return driver.Volume{}, fmt.Errorf("%w: %s (its data directory is gone)", driver.ErrVolumeNotFound, name)
	}
	return driver.Volume(m), nil
}

// RemoveVolume implements driver.Driver.
func (d *Driver) RemoveVolume(_ context.Context, name string) error {
	if !validVolumeName(name) {
		return nil
	}
	// The metadata goes first: a removal cut short leaves a directory that no listing shows as a
	// volume rather than a volume with half its files.
	if err := os.Remove(filepath.Join(d.volumeDir(name), "volume.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(d.volumeDir(name))
}

// ListVolumes implements driver.Driver.
func (d *Driver) ListVolumes(ctx context.Context) ([]driver.Volume, error) {
	entries, err := os.ReadDir(filepath.Join(d.opts.RunDir, volumesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []driver.Volume
	for _, e := range entries {
		if v, err := d.InspectVolume(ctx, e.Name()); err == nil {
			out = append(out, v)
		}
	}
	return out, nil
}
