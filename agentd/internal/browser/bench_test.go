package browser

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkCheck measures one check of a small page on the shared browser, and reports the
// proportional memory of chromium's whole process tree after the checks (pss-MB: shared pages
// split between the processes sharing them, so the sum is what the tree really costs) and how
// long the browser took to start (start-ms).
//
//	go test -run '^$' -bench Check -benchtime 20x ./internal/browser/
func BenchmarkCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>Bench</title><body><h1>Hello</h1><p>` + strings.Repeat("text ", 200) + `</p></body>`))
	}))
	b.Cleanup(srv.Close)
	start := time.Now()
	br, err := New(Config{}, testLog())
	if err != nil {
		b.Skipf("chromium unavailable: %v", err)
	}
	started := time.Since(start)
	b.Cleanup(func() { _ = br.Close() })

	b.ResetTimer()
	for b.Loop() {
		r, err := br.Check(b.Context(), Request{URL: srv.URL})
		require.NoError(b, err)
		require.Equal(b, "Bench", r.Title)
	}
	b.StopTimer()
	b.ReportMetric(float64(started.Milliseconds()), "start-ms")
	b.ReportMetric(float64(treePSS(br.PID()))/(1<<20), "pss-MB")
}

// treePSS sums the proportional set size of pid and its descendants.
func treePSS(pid int) int64 {
	var total int64
	for _, p := range processTree(pid) {
		rollup, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/smaps_rollup")
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(rollup), "\n") {
			if v, ok := strings.CutPrefix(line, "Pss:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}
