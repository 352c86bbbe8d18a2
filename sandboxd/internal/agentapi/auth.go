package agentapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// An agent reached over the network (a Kubernetes pod) is not protected by a directory's permissions as
// its unix socket is: anything that can route to the pod can connect. Every connection therefore opens
// with a challenge-response on a per-sandbox secret, before a byte of HTTP:
//
//	agent:    "MGXA1 <64 hex: 32 random bytes>\n"
//	sandboxd: "<64 hex: HMAC-SHA256(secret, AuthContext || challenge)>\n"
//	agent:    "ok\n"   (or "denied\n", then it closes)
//
// The secret itself never crosses the wire, so a captured handshake cannot be replayed against a fresh
// challenge, and the agent compares MACs in constant time (hmac.Equal). The traffic after it is
// plaintext HTTP on the cluster network; confidentiality there is the CNI's (WireGuard/IPsec).

// AuthBanner starts the agent's challenge line; it names the handshake's version.
const AuthBanner = "MGXA1 "

// AuthContext binds the MAC to this handshake, so the secret's MAC is useful nowhere else.
const AuthContext = "mgx sandbox-agent auth v1\x00"

// MinSecretLen is the shortest secret an agent accepts (bytes of its text form).
const MinSecretLen = 32

// AuthTimeout bounds the whole handshake on either side.
const AuthTimeout = 10 * time.Second

// ErrDenied means the agent refused the secret.
var ErrDenied = errors.New("agent refused the connection's secret")

const (
	challengeLen = 32
	lineMax      = 128
)

// ServerHandshake runs the agent's side on a fresh connection: it reports nil only when the peer proved
// it knows secret. The caller closes conn on error.
func ServerHandshake(conn net.Conn, secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("agent secret shorter than %d bytes", MinSecretLen)
	}
	_ = conn.SetDeadline(time.Now().Add(AuthTimeout))
	// A connection whose deadline cannot be cleared fails its next read, which says so.
	defer func() { _ = conn.SetDeadline(time.Time{}) }()
	challenge := make([]byte, challengeLen)
	if _, err := rand.Read(challenge); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, AuthBanner+hex.EncodeToString(challenge)+"\n"); err != nil {
		return err
	}
	line, err := readLine(conn)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(line)
	if err != nil || !hmac.Equal(got, authMAC(secret, challenge)) {
		_, _ = io.WriteString(conn, "denied\n")
		return ErrDenied
	}
	_, err = io.WriteString(conn, "ok\n")
	return err
}

// ClientHandshake runs sandboxd's side on a fresh connection to an agent.
func ClientHandshake(ctx context.Context, conn net.Conn, secret []byte) error {
	deadline := time.Now().Add(AuthTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	defer func() { _ = conn.SetDeadline(time.Time{}) }()
	line, err := readLine(conn)
	if err != nil {
		return fmt.Errorf("agent handshake: %w", err)
	}
	hexChallenge, ok := bytes.CutPrefix([]byte(line), []byte(AuthBanner))
	challenge, err := hex.DecodeString(string(hexChallenge))
	if !ok || err != nil || len(challenge) != challengeLen {
		return errors.New("agent handshake: not a sandbox-agent challenge")
	}
	if _, err := io.WriteString(conn, hex.EncodeToString(authMAC(secret, challenge))+"\n"); err != nil {
		return fmt.Errorf("agent handshake: %w", err)
	}
	line, err = readLine(conn)
	switch {
	case err != nil && line == "":
		return fmt.Errorf("agent handshake: %w", err)
	case line == "ok":
		return nil
	case line == "denied":
		return ErrDenied
	}
	return fmt.Errorf("agent handshake: unexpected answer %q", line)
}

func authMAC(secret, challenge []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(AuthContext))
	m.Write(challenge)
	return m.Sum(nil)
}

// readLine reads one "\n"-terminated line byte by byte: nothing past it may be consumed, since the
// connection's next bytes belong to HTTP.
func readLine(r io.Reader) (string, error) {
	var b [1]byte
	line := make([]byte, 0, 80)
	for len(line) < lineMax {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return string(line), err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("handshake line too long")
}
