package store_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/store"
)

func TestArtifactsBelongToTheSessionAndItsOwner(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)
	a, err := s.SaveArtifact(ctx, store.Artifact{SessionID: sess.ID, Name: "shot.png", ContentType: "image/png", Tool: "preview_check"}, png)
	require.NoError(t, err)
	require.NotEmpty(t, a.ID)
	require.EqualValues(t, len(png), a.Size)

	got, data, err := s.GetArtifact(ctx, "alice", sess.ID, a.ID)
	require.NoError(t, err)
	require.Equal(t, png, data)
	require.Equal(t, "shot.png", got.Name)
	list, err := s.ListArtifacts(ctx, "alice", sess.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)

	_, _, err = s.GetArtifact(ctx, "bob", sess.ID, a.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another user's session")
	_, err = s.ListArtifacts(ctx, "bob", sess.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.GetArtifact(ctx, "alice", sess.ID, uuid.NewString())
	require.ErrorIs(t, err, store.ErrNotFound, "an unknown id")
	_, err = s.SaveArtifact(ctx, store.Artifact{SessionID: uuid.NewString(), Name: "x.png"}, png)
	require.ErrorIs(t, err, store.ErrNotFound, "a session that does not exist keeps nothing")
	_, err = s.SaveArtifact(ctx, store.Artifact{SessionID: sess.ID, Name: "big.png"}, make([]byte, store.MaxArtifactBytes+1))
	require.ErrorIs(t, err, store.ErrArtifactTooLarge)

	require.NoError(t, s.DeleteSession(ctx, "alice", sess.ID))
	exists, err := s.Client().Exists(ctx, "agentd:session:{"+sess.ID+"}:artifacts", "agentd:session:{"+sess.ID+"}:artifacts:data",
		"agentd:session:{"+sess.ID+"}:artifacts:index").Result()
	require.NoError(t, err)
	require.Zero(t, exists, "the artifacts go with the session")
}

func TestArtifactsBeyondTheBoundDropTheOldest(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")
	base := time.Now().UTC().Truncate(time.Millisecond)
	var first string
	for i := range store.MaxArtifactsPerSession + 3 {
		a, err := s.SaveArtifact(ctx, store.Artifact{SessionID: sess.ID, Name: fmt.Sprintf("%d.png", i), ContentType: "image/png",
			CreatedAt: base.Add(time.Duration(i) * time.Millisecond)}, []byte{byte(i)})
		require.NoError(t, err)
		if i == 0 {
			first = a.ID
		}
	}
	list, err := s.ListArtifacts(ctx, "alice", sess.ID)
	require.NoError(t, err)
	require.Len(t, list, store.MaxArtifactsPerSession)
	require.Equal(t, "3.png", list[0].Name, "the three oldest went")
	require.Equal(t, fmt.Sprintf("%d.png", store.MaxArtifactsPerSession+2), list[len(list)-1].Name)
	_, _, err = s.GetArtifact(ctx, "alice", sess.ID, first)
	require.ErrorIs(t, err, store.ErrNotFound)
}
