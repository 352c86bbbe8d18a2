// Package authn authenticates internal gRPC calls between mgx services and
// carries the end user's identity along them.
//
// Trust model: only the gateway authenticates end users. Every internal call
// carries a shared secret (x-mgx-internal-token); a server accepts a call
// only with the right token, and only then trusts the caller-supplied user id
// (x-mgx-user-id). The gateway sets the user id from the user's credentials;
// agentd and sandboxd forward it unchanged. The token is sent over plaintext
// transport for now, so the services' network must be private; mutual TLS
// will replace it (flip RequireTransportSecurity then).
package authn

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// Metadata keys. gRPC metadata keys are lower-case.
const (
	// MDInternalToken carries the shared secret of internal calls.
	MDInternalToken = "x-mgx-internal-token"
	// MDUserID carries the id of the end user a call is made for.
	MDUserID = "x-mgx-user-id"
)

type userKey struct{}

// WithUser returns a context whose outgoing gRPC calls act for userID,
// replacing any user id already set. Use it where no incoming call carries
// the user, e.g. in the gateway after it authenticated the user or in a
// background worker resuming a user's run.
func WithUser(ctx context.Context, userID string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(MDUserID, userID)
	return metadata.NewOutgoingContext(ctx, md)
}

// UserID returns the end user the current call acts for, as authenticated by
// the server interceptors. ok is false for calls made by a service on its own
// behalf (e.g. the reaper).
func UserID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(userKey{}).(string)
	return id, ok && id != ""
}

// ContextWithUserID returns ctx as the server interceptors leave it for a
// call authenticated for userID. It is for tests of handlers and for
// in-process calls that bypass gRPC; it grants nothing over the network.
func ContextWithUserID(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, userKey{}, userID)
}
