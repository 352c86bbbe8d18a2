package app

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
	"github.com/mgx-ai/mgx/sandboxd/internal/productimage"
)

func TestWarnIfStale(t *testing.T) {
	current, err := productimage.ProductHash()
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		ref    string
		labels map[string]string
		warns  bool
	}{
		{"current", sandboximage.DefaultRef, map[string]string{productimage.LabelRecipe: current}, false},
		{"older recipe", sandboximage.DefaultRef, map[string]string{productimage.LabelRecipe: "0123abcd"}, true},
		{"docker build of the Dockerfile", sandboximage.DefaultRef, nil, false},
		{"an image of the operator's own", "registry.example/sandbox:7", map[string]string{productimage.LabelRecipe: "0123abcd"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			warnIfStale(tc.ref, tc.labels, slog.New(slog.NewTextHandler(&buf, nil)))
			if tc.warns {
				require.Contains(t, buf.String(), "make sandbox-image")
			} else {
				require.Empty(t, buf.String())
			}
		})
	}
}
