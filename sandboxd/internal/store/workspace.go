package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Workspace states.
const (
	// WorkspacePending: bound to the session, its volumes being made; nothing of the user's is in it
	// yet, so volumes missing in this state are simply made (again).
	WorkspacePending = "pending"
	// WorkspaceReady: marked as the session's; from now on it holds the user's work.
	WorkspaceReady = "ready"
	// WorkspaceMissing: a volume of a ready workspace is gone. Reported, never replaced silently.
	WorkspaceMissing = "missing"
	// WorkspaceForeign: a volume under the workspace's name is not the session's (its marker or its
	// labels say otherwise). Reported, kept, never used.
	WorkspaceForeign = "foreign"
)

// Workspace is a session's workspace binding.
type Workspace struct {
	SessionID string
	// ID names the workspace's volumes.
	ID      string
	State   string
	Created time.Time
}

func parseWorkspace(sessionID string, m map[string]string) (Workspace, bool) {
	if m["id"] == "" {
		return Workspace{}, false
	}
	return Workspace{SessionID: sessionID, ID: m["id"], State: m["state"], Created: fromMS(m["created_ms"])}, true
}

// Workspace returns the session's workspace binding; ok is false when it has none.
func (s *Store) Workspace(ctx context.Context, sessionID string) (Workspace, bool, error) {
	m, err := s.rdb.HGetAll(ctx, workspaceKey(sessionID)).Result()
	if err != nil {
		return Workspace{}, false, fmt.Errorf("get workspace: %w", err)
	}
	w, ok := parseWorkspace(sessionID, m)
	return w, ok, nil
}

// BindWorkspace binds workspace id to the session, pending, unless the session has a workspace
// already: it returns the binding in force, which is id's only if it was free.
func (s *Store) BindWorkspace(ctx context.Context, sessionID, id string) (Workspace, error) {
	now := s.now()
	res, err := bindWorkspaceScript.Run(ctx, s.rdb, []string{workspaceKey(sessionID)}, id, WorkspacePending, ms(now)).StringSlice()
	if err != nil {
		return Workspace{}, fmt.Errorf("bind workspace: %w", err)
	}
	if err := s.rdb.SAdd(ctx, workspacesKey, sessionID).Err(); err != nil {
		return Workspace{}, fmt.Errorf("index workspace: %w", err)
	}
	return Workspace{SessionID: sessionID, ID: res[0], State: res[1], Created: fromMS(res[2])}, nil
}

// ErrWorkspaceChanged means the session's workspace binding is no longer the one the caller had.
var ErrWorkspaceChanged = errors.New("workspace binding changed")

// SetWorkspaceState moves the session's workspace id to state, only if id is still its workspace.
func (s *Store) SetWorkspaceState(ctx context.Context, sessionID, id, state string) error {
	n, err := setWorkspaceStateScript.Run(ctx, s.rdb, []string{workspaceKey(sessionID)}, id, state).Int()
	if err != nil {
		return fmt.Errorf("set workspace state: %w", err)
	}
	if n == 0 {
		return ErrWorkspaceChanged
	}
	return nil
}

// ReplaceWorkspace binds a new workspace id (pending) in place of old, only if old is still the
// session's workspace.
func (s *Store) ReplaceWorkspace(ctx context.Context, sessionID, old, id string) error {
	n, err := replaceWorkspaceScript.Run(ctx, s.rdb, []string{workspaceKey(sessionID)}, old, id, WorkspacePending, ms(s.now())).Int()
	if err != nil {
		return fmt.Errorf("replace workspace: %w", err)
	}
	if n == 0 {
		return ErrWorkspaceChanged
	}
	return nil
}

// ForgetWorkspace drops the session's workspace binding (the session was deleted).
func (s *Store) ForgetWorkspace(ctx context.Context, sessionID string) error {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, workspaceKey(sessionID))
	pipe.SRem(ctx, workspacesKey, sessionID)
	_, err := pipe.Exec(ctx)
	return err
}

// Workspaces returns every session's workspace binding (reconciliation; O(sessions)).
func (s *Store) Workspaces(ctx context.Context) ([]Workspace, error) {
	ids, err := s.rdb.SMembers(ctx, workspacesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, workspaceKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("load workspaces: %w", err)
	}
	out := make([]Workspace, 0, len(ids))
	for i, cmd := range cmds {
		w, ok := parseWorkspace(ids[i], cmd.Val())
		if !ok {
			s.rdb.SRem(ctx, workspacesKey, ids[i])
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

// VolumeEpoch returns when this Redis started keeping sandboxd's volumes, setting it to now on the
// first call.
func (s *Store) VolumeEpoch(ctx context.Context) (time.Time, error) {
	if err := s.rdb.SetNX(ctx, volumeEpochKey, ms(s.now()), 0).Err(); err != nil {
		return time.Time{}, fmt.Errorf("volume epoch: %w", err)
	}
	v, err := s.rdb.Get(ctx, volumeEpochKey).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("volume epoch: %w", err)
	}
	return fromMS(v), nil
}

// KeepVolume marks a volume as never to be removed by reconciliation.
func (s *Store) KeepVolume(ctx context.Context, name string) error {
	return s.rdb.SAdd(ctx, keptVolumesKey, name).Err()
}

// KeptVolumes returns the volumes reconciliation must leave alone.
func (s *Store) KeptVolumes(ctx context.Context) (map[string]bool, error) {
	names, err := s.rdb.SMembers(ctx, keptVolumesKey).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}
