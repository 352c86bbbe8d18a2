package instance

import (
	"context"
	"errors"
	"fmt"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// VolumeNames returns the names of workspace id's two volumes: the user's files and the
// workspace's own state (marker, checkpoint history).
func VolumeNames(id string) (data, meta string) { return "mgx-ws-" + id, "mgx-ws-" + id + "-meta" }

// Volumes is what CreateWorkspace found or made.
type Volumes struct {
	// Created lists the volumes made by this call (the others existed already).
	Created []string
}

// CreateWorkspace makes whichever of workspace id's volumes does not exist yet, labelled with the
// id, its role and labels. An existing volume is accepted only when its labels name this workspace
// and role; any other is reported with ErrForeignVolume and left alone.
func (f *Fleet) CreateWorkspace(ctx context.Context, id string, labels map[string]string) (Volumes, error) {
	var out Volumes
	data, meta := VolumeNames(id)
	for _, v := range []struct{ name, role string }{{data, driver.VolumeData}, {meta, driver.VolumeMeta}} {
		l := map[string]string{driver.LabelWorkspace: id, driver.LabelVolume: v.role}
		for k, val := range labels {
			l[k] = val
		}
		_, err := f.drv.CreateVolume(ctx, v.name, l)
		if errors.Is(err, driver.ErrVolumeExists) {
			if err := f.checkVolume(ctx, id, v.name, v.role); err != nil {
				return out, err
			}
			continue
		}
		if err != nil {
			return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		out.Created = append(out.Created, v.name)
	}
	return out, nil
}

// ErrForeignVolume means a volume under a workspace's name does not carry that workspace's labels.
var ErrForeignVolume = errors.New("volume belongs to another workspace")

// CheckWorkspace verifies that both of workspace id's volumes exist and carry its labels:
// driver.ErrVolumeNotFound or ErrForeignVolume (each naming the volume) otherwise.
func (f *Fleet) CheckWorkspace(ctx context.Context, id string) error {
	data, meta := VolumeNames(id)
	if err := f.checkVolume(ctx, id, data, driver.VolumeData); err != nil {
		return err
	}
	return f.checkVolume(ctx, id, meta, driver.VolumeMeta)
}

func (f *Fleet) checkVolume(ctx context.Context, id, name, role string) error {
	v, err := f.drv.InspectVolume(ctx, name)
	if err != nil {
		return err
	}
	if v.Labels[driver.LabelWorkspace] != id || v.Labels[driver.LabelVolume] != role {
		return fmt.Errorf("%w: %s", ErrForeignVolume, name)
	}
	return nil
}

// RemoveWorkspace removes both of workspace id's volumes. A volume still mounted by an instance
// cannot go; the error says so and reconciliation retries once the instance is gone.
func (f *Fleet) RemoveWorkspace(ctx context.Context, id string) error {
	data, meta := VolumeNames(id)
	return errors.Join(f.drv.RemoveVolume(ctx, data), f.drv.RemoveVolume(ctx, meta))
}

// ListVolumes returns every volume of this deployment.
func (f *Fleet) ListVolumes(ctx context.Context) ([]driver.Volume, error) {
	return f.drv.ListVolumes(ctx)
}

// RemoveVolume removes one volume.
func (f *Fleet) RemoveVolume(ctx context.Context, name string) error {
	return f.drv.RemoveVolume(ctx, name)
}
