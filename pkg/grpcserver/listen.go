package grpcserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
)

// Listen opens addr for a gRPC server: "unix:///abs/path" (or
// "unix:relative/path", the forms gRPC clients dial) for a unix socket, and
// "host:port" for TCP.
//
// A socket file left behind by a process that died without closing it is
// removed first, since otherwise every restart would fail with "address
// already in use"; a socket something still answers on is left alone and
// reported.
func Listen(addr string) (net.Listener, error) {
	path, isUnix := unixPath(addr)
	if !isUnix {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("grpcserver: listen %s: %w", addr, err)
		}
		return lis, nil
	}
	if path == "" {
		return nil, fmt.Errorf("grpcserver: listen %q: empty unix socket path", addr)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, fmt.Errorf("grpcserver: listen %s: %w", addr, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("grpcserver: listen %s: %w", addr, err)
	}
	return lis, nil
}

// unixPath returns the socket path of a unix address.
func unixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p, true
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return p, true
	}
	return "", false
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	conn, err := net.Dial("unix", path)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("%s: %w", path, syscall.EADDRINUSE)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return os.Remove(path)
}
