package previewhost_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/previewhost"
)

func TestFromPublicURL(t *testing.T) {
	for _, tc := range []struct {
		public, url, suffix, frames string
		err                         error
	}{
		{"http://localhost:8000", "http://p3000-abc.preview.localhost:8000/", ".preview.localhost", "http://*.preview.localhost:8000", nil},
		{"https://MGX.example.com/", "https://p3000-abc.preview.mgx.example.com/", ".preview.mgx.example.com", "https://*.preview.mgx.example.com", nil},
		{"https://mgx.example.com:8443/base", "https://p3000-abc.preview.mgx.example.com:8443/", ".preview.mgx.example.com", "https://*.preview.mgx.example.com:8443", nil},
		// An IP cannot have subdomains; loopback ones have *.localhost, which browsers resolve.
		{"http://127.0.0.1:8000", "http://p3000-abc.preview.localhost:8000/", ".preview.localhost", "http://*.preview.localhost:8000", nil},
		{"http://[::1]:8000", "http://p3000-abc.preview.localhost:8000/", ".preview.localhost", "http://*.preview.localhost:8000", nil},
		{"http://203.0.113.7:8000", "", "", "", previewhost.ErrIPHost},
		{"http://[2001:db8::1]", "", "", "", previewhost.ErrIPHost},
	} {
		t.Run(tc.public, func(t *testing.T) {
			b, err := previewhost.FromPublicURL(tc.public)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.url, b.URL(previewhost.Label(3000, "abc")))
			require.Equal(t, tc.suffix, b.Suffix())
			require.Equal(t, tc.frames, b.FrameSource())
		})
	}
	for _, bad := range []string{"localhost:8000", "ftp://host", "http://", "::"} {
		_, err := previewhost.FromPublicURL(bad)
		require.Error(t, err, bad)
		require.NotErrorIs(t, err, previewhost.ErrIPHost, bad)
	}
}

func TestParse(t *testing.T) {
	domains := []string{previewhost.Loopback, "preview.mgx.example.com"}
	long := strings.Repeat("a", previewhost.MaxCapability)
	for _, tc := range []struct {
		host       string
		port       int
		capability string
		domain     string
	}{
		{"p3000-abc234.preview.localhost:8000", 3000, "abc234", "preview.localhost"},
		{"P5173-ABC.Preview.MGX.example.com", 5173, "abc", "preview.mgx.example.com"},
		{"p65535-" + long + ".preview.localhost", 65535, long, "preview.localhost"},
		{"p1-a.preview.mgx.example.com.", 1, "a", "preview.mgx.example.com"},
		{"p65536-abc.preview.localhost", 0, "", ""},
		{"p0-abc.preview.localhost", 0, "", ""},
		{"p03000-abc.preview.localhost", 0, "", ""},
		{"p3000-abc.preview.evil.example", 0, "", ""},
		{"p3000-abc.x.preview.localhost", 0, "", ""},
		{"p3000-ab1.preview.localhost", 0, "", ""},
		{"p3000-" + long + "a.preview.localhost", 0, "", ""},
		{"p3000-.preview.localhost", 0, "", ""},
		{"localhost:8000", 0, "", ""},
		{"preview.localhost", 0, "", ""},
	} {
		t.Run(tc.host, func(t *testing.T) {
			port, capability, domain, ok := previewhost.Parse(tc.host, domains...)
			require.Equal(t, tc.port != 0, ok)
			require.Equal(t, tc.port, port)
			require.Equal(t, tc.capability, capability)
			require.Equal(t, tc.domain, domain)
		})
	}
}

func TestRedact(t *testing.T) {
	for host, want := range map[string]string{
		"p5173-abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst.preview.localhost:8000": "p5173-….preview.localhost:8000",
		"P80-ABC.preview.mgx.example.com": "p80-….preview.mgx.example.com",
		"localhost:8000":                  "localhost:8000",
		"api.mgx.example.com":             "api.mgx.example.com",
		"p0-abc.preview.localhost":        "p0-abc.preview.localhost",
	} {
		require.Equal(t, want, previewhost.Redact(host), host)
	}
}
