package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go's SPDY dialer (v0.37) still returns these types, not k8s.io/streaming's
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// Routes to a pod's agent.
const (
	// RoutePodIP dials the pod's IP: sandboxd runs in the cluster, on its pod network.
	RoutePodIP = "pod-ip"
	// RoutePortForward tunnels each connection through the API server (pods/portforward), as
	// `kubectl port-forward` does: sandboxd runs anywhere the API server is reachable (a developer's
	// machine, a host outside the cluster), at the price of a hop through the API server and the
	// kubelet. The secret handshake runs inside the tunnel all the same.
	RoutePortForward = "port-forward"
)

// DialAgent implements driver.AgentDialer: a connection to the pod's agent port by the configured route.
func (d *Driver) DialAgent(ctx context.Context, inst driver.Instance) (net.Conn, error) {
	if d.opts.AgentRoute != RoutePortForward {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", inst.Endpoint)
	}
	name, _ := splitID(inst.ID)
	if name == "" {
		name = inst.Name
	}
	return d.portForward(ctx, name, d.opts.AgentPort)
}

// portForward opens one SPDY session through the API server to port of the pod, with the protocol's
// two streams: data (the connection) and error (where the kubelet reports a failed dial).
func (d *Driver) portForward(ctx context.Context, pod string, port int) (net.Conn, error) {
	// Per dial: client-go's SPDY round tripper holds the one connection it upgraded.
	rt, upgrader, err := spdy.RoundTripperFor(d.cfg)
	if err != nil {
		return nil, err
	}
	u := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.opts.Namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	type dialed struct {
		conn httpstream.Connection
		err  error
	}
	// The SPDY dialer takes no context: a dial that outlives ctx is closed when it lands.
	ch := make(chan dialed, 1)
	go func() {
		c, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialed{c, err}
	}()
	var conn httpstream.Connection
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s: %w", pod, r.err)
		}
		conn = r.conn
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to pod %s: %w", pod, ctx.Err())
	}
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s: error stream: %w", pod, err)
	}
	errStream.Close() // nothing to say on it; the kubelet's failures arrive on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s: data stream: %w", pod, err)
	}
	// The agent client sets deadlines (the handshake's, a request's): a pipe gives the tunnel real
	// ones, and the copies between it and the data stream end with either side.
	local, remote := net.Pipe()
	fc := &forwardConn{Conn: local, close: func() {
		remote.Close()
		conn.Close()
	}}
	go func() {
		_, _ = io.Copy(data, remote)
		data.Close()
	}()
	go func() {
		_, _ = io.Copy(remote, data)
		fc.Close()
	}()
	go func() {
		// A message here is the kubelet failing to reach the port (nothing listens, the pod is gone).
		if msg, _ := io.ReadAll(errStream); len(msg) > 0 {
			d.log.WarnContext(context.WithoutCancel(ctx), "port-forward", "pod", pod, "err", string(msg))
			fc.Close()
		}
	}()
	go func() {
		<-conn.CloseChan()
		fc.Close()
	}()
	return fc, nil
}

// forwardConn is the local end of a tunnel; closing it ends the SPDY session.
type forwardConn struct {
	net.Conn
	closed atomic.Bool
	close  func()
}

func (c *forwardConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.Conn.Close()
	c.close()
	return err
}

// ErrRoute is an AgentRoute the driver does not know.
var ErrRoute = errors.New("unknown agent route")
