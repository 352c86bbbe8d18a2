package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// CreateVolume implements driver.Driver: a PersistentVolumeClaim of the workspace's size (the meta
// role gets MetaSize), labelled like every object of this deployment. The API server refuses a second
// claim of a name, so two replicas creating one workspace meet in one ErrVolumeExists.
func (d *Driver) CreateVolume(ctx context.Context, name string, lbl map[string]string) (driver.Volume, error) {
	size := d.opts.WorkspaceSize
	if lbl[driver.LabelVolume] == driver.VolumeMeta {
		size = d.opts.MetaSize
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: withRole(d.labels(lbl), RoleWorkspace), Annotations: d.annotations(lbl)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
	if d.opts.StorageClass != "" {
		pvc.Spec.StorageClassName = &d.opts.StorageClass
	}
	created, err := d.cs.CoreV1().PersistentVolumeClaims(d.opts.Namespace).Create(ctx, pvc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeExists, name)
	}
	if err != nil {
		return driver.Volume{}, fmt.Errorf("create workspace claim %s: %w", name, err)
	}
	return d.volume(created), nil
}

// InspectVolume implements driver.Driver. A claim being deleted is reported as missing: its files
// go once its last pod does, so nothing may mount it again.
func (d *Driver) InspectVolume(ctx context.Context, name string) (driver.Volume, error) {
	pvc, err := d.cs.CoreV1().PersistentVolumeClaims(d.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && pvc.DeletionTimestamp != nil) {
		return driver.Volume{}, fmt.Errorf("%w: %s", driver.ErrVolumeNotFound, name)
	}
	if err != nil {
		return driver.Volume{}, fmt.Errorf("get workspace claim %s: %w", name, err)
	}
	return d.volume(pvc), nil
}

// RemoveVolume implements driver.Driver. The API server would accept the delete of a claim a pod
// still mounts and carry it out only once the pod is gone (the claim's protection finalizer); the
// driver contract says such a volume cannot go, so the caller keeps it and retries after the pod.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	set := map[string]string{driver.LabelManaged: "1", driver.LabelNamespace: labelValue(d.opts.DeploymentNamespace), LabelRole: RoleSandbox}
	// Pods carry the workspace of the claims they mount (Create): a claim of a workspace is held by
	// that workspace's pods only. A claim without one (made by hand) is checked against every pod.
	pvc, err := d.cs.CoreV1().PersistentVolumeClaims(d.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove workspace claim %s: %w", name, err)
	}
	if ws := pvc.Labels[driver.LabelWorkspace]; ws != "" {
		set[driver.LabelWorkspace] = ws
	}
	pods, err := d.cs.CoreV1().Pods(d.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()})
	if err != nil {
		return fmt.Errorf("remove workspace claim %s: list pods: %w", name, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		for _, v := range p.Spec.Volumes {
			// A terminating pod still holds its mounts: the claim waits for it too.
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name {
				return fmt.Errorf("remove workspace claim %s: in use by pod %s", name, p.Name)
			}
		}
	}
	// Conditional on the claim that was checked: a namesake made since is not this removal's.
	err = d.cs.CoreV1().PersistentVolumeClaims(d.opts.Namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pvc.UID}})
	if apierrors.IsConflict(err) {
		err = nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove workspace claim %s: %w", name, err)
	}
	return nil
}

// ListVolumes implements driver.Driver: the workspace claims of this deployment.
func (d *Driver) ListVolumes(ctx context.Context) ([]driver.Volume, error) {
	sel := labels.SelectorFromSet(map[string]string{
		driver.LabelManaged: "1", driver.LabelNamespace: labelValue(d.opts.DeploymentNamespace), LabelRole: RoleWorkspace,
	})
	l, err := d.cs.CoreV1().PersistentVolumeClaims(d.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list workspace claims: %w", err)
	}
	out := make([]driver.Volume, 0, len(l.Items))
	for i := range l.Items {
		if l.Items[i].DeletionTimestamp == nil {
			out = append(out, d.volume(&l.Items[i]))
		}
	}
	return out, nil
}

func (d *Driver) volume(pvc *corev1.PersistentVolumeClaim) driver.Volume {
	return driver.Volume{Name: pvc.Name, Labels: d.rawLabels(pvc.Labels, pvc.Annotations), Created: pvc.CreationTimestamp.Time}
}
