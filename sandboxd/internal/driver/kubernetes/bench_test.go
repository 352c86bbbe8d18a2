//go:build bench

package kubernetes

// The Kubernetes warm-pool benchmark (make bench-k8s): on the simulated cluster of the driver's tests
// (a real API server, etcd, controller manager, scheduler; kwok's node; the stand-in kubelet starting
// real agents), what a session's first sandbox costs from the warm pool — the Redis pop and the
// API server's conditional claim — next to a cold start: the workspace's two claims, the secret, the
// pod until Running and its agent answering. Also the claim whose recorded version went stale (a
// conflict, a look, the retry). Node-side costs (image pulls, container start) are kwok's simulation,
// so the cold column is a lower bound of a real cluster's; the warm column is what a real cluster pays.
//
//	make bench-k8s   (or: cd sandboxd && go test -tags bench -run '^TestBenchPool$' -v ./internal/driver/kubernetes -args -n 20)

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/kubetest"
	"github.com/mgx-ai/mgx/sandboxd/internal/pool"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

var benchN = flag.Int("n", 20, "sandboxes per column")

func TestBenchPool(t *testing.T) {
	c := kubetest.Start(t)
	ns := c.Namespace(t, "bench")
	agents := c.RunAgents(t, ns, stacktest.Bin(t, "sandbox-agent"))
	defer agents.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	d := newDriver(t, c, ns)
	fleet := instance.New(d, instance.Options{CreateTimeout: 2 * time.Minute})
	rdb, err := redisclient.New(ctx, stacktest.SharedRedis(t))
	require.NoError(t, err)
	defer rdb.Close()
	st := store.New(rdb)
	warm := pool.New(fleet, st, pool.Options{Size: 0, Replica: "bench", CreateTimeout: 2 * time.Minute})

	// Cold: what a session without a warm pod waits for.
	var cold, claim, stale []time.Duration
	var pods []driver.Instance
	for i := range 2 * *benchN {
		id := "bench" + strconv.Itoa(i)
		begin := time.Now()
		_, err := fleet.CreateWorkspace(ctx, id, map[string]string{driver.LabelPool: "1"})
		require.NoError(t, err)
		data, meta := instance.VolumeNames(id)
		in, err := fleet.Create(ctx, driver.Spec{Name: "mgx-pool-" + id, Labels: map[string]string{driver.LabelPool: "1", driver.LabelWorkspace: id},
			Data: data, Meta: meta, Fresh: true})
		require.NoError(t, err, "%s", agents)
		cold = append(cold, time.Since(begin))
		pods = append(pods, in)
	}
	// Warm: one entry in the pool at a time, so each claim pops the pod it measures.
	for i, in := range pods {
		if i%2 == 1 {
			// The pod changed after it was pooled: the recorded version is stale.
			_, err := c.Client.CoreV1().Pods(ns).Patch(ctx, in.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"1"}}}`), metav1.PatchOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, st.PoolAdd(ctx, fleet.DriverName(), in))
		begin := time.Now()
		got, ok := warm.Claim(ctx, "bench", "session-"+strconv.Itoa(i))
		took := time.Since(begin)
		require.True(t, ok)
		require.Equal(t, in.ID, got.ID)
		if i%2 == 1 {
			stale = append(stale, took)
		} else {
			claim = append(claim, took)
		}
	}
	fmt.Printf("\nKubernetes warm pool (simulated cluster; %d cold starts, %d claims of each kind)\n\n", len(cold), len(claim))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "first sandbox of a session\tp50\tp90\tvs cold p50\t")
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"cold: claims, secret, pod Running, agent answers", cold}, {"warm claim (pop + conditional patch)", claim}, {"warm claim, stale version (conflict, get, patch)", stale}} {
		fmt.Fprintf(w, "%s\t%s\t%s\t%.0f×\t\n", r.name, ms(pct(r.ds, 50)), ms(pct(r.ds, 90)), float64(pct(cold, 50))/float64(pct(r.ds, 50)))
	}
	require.NoError(t, w.Flush())
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
