package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// CreateVolume implements driver.Driver.
func (d *Driver) CreateVolume(ctx context.Context, name string, labels map[string]string) (driver.Volume, error) {
	// The engine answers a create of an existing name with that volume: only a check first tells
	// the caller it did not make it.
	if _, err := d.InspectVolume(ctx, name); err == nil {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeExists, name)
	}
	all := map[string]string{driver.LabelManaged: "1", driver.LabelNamespace: d.opts.Namespace}
	for k, v := range labels {
		all[k] = v
	}
	v, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: d.opts.VolumeDriver, DriverOpts: d.opts.VolumeOpts, Labels: all})
	if err != nil {
		return driver.Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	return toVolume(v), nil
}

// InspectVolume implements driver.Driver.
func (d *Driver) InspectVolume(ctx context.Context, name string) (driver.Volume, error) {
	v, err := d.cli.VolumeInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeNotFound, name)
	}
	if err != nil {
		return driver.Volume{}, fmt.Errorf("inspect volume %s: %w", name, err)
	}
	return toVolume(v), nil
}

// RemoveVolume implements driver.Driver.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	err := d.cli.VolumeRemove(ctx, name, false)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// ListVolumes implements driver.Driver.
func (d *Driver) ListVolumes(ctx context.Context) ([]driver.Volume, error) {
	res, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", driver.LabelManaged+"=1"),
		filters.Arg("label", driver.LabelNamespace+"="+d.opts.Namespace),
	)})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]driver.Volume, 0, len(res.Volumes))
	for _, v := range res.Volumes {
		if v != nil {
			out = append(out, toVolume(*v))
		}
	}
	return out, nil
}

func toVolume(v volume.Volume) driver.Volume {
	created, _ := time.Parse(time.RFC3339, v.CreatedAt)
	return driver.Volume{Name: v.Name, Labels: v.Labels, Created: created}
}

// prepareMeta gives a fresh meta volume to the sandbox user. The engine creates a volume's root
// owned by root, and copies an image directory's owner onto it only where the image has that
// directory (/workspace); the meta mount point is in no image, and the sandbox user has no
// capability to chown. Copying a directory entry owned by the user onto the mount point of the
// created (not yet started) container sets the volume root's owner: one API call, no helper
// container. A user given by name (not uid:gid) cannot be resolved here; its meta directory stays
// root's and checkpoints are refused with a clear error by the agent.
func (d *Driver) prepareMeta(ctx context.Context, containerID string) error {
	uid, gid, ok := numericUser(d.opts.User)
	if !ok {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: ".mgx/", Mode: 0o755, ModTime: now})
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(MetaPath, "/") + "/", Mode: 0o700, Uid: uid, Gid: gid, ModTime: now})
	if err := tw.Close(); err != nil {
		return err
	}
	if err := d.cli.CopyToContainer(ctx, containerID, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("prepare meta volume: %w", err)
	}
	return nil
}
