package auth

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"
)

type principalKey struct{}

// NewContext returns ctx carrying the authenticated caller.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller the edge authenticated for this request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.UserID != ""
}

type clientIPKey struct{}

// ContextWithClientIP records the client's address for the upstream call.
func ContextWithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIPFromContext returns the address recorded by ContextWithClientIP.
func ClientIPFromContext(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// Metadata under which the edge tells the in-process AuthService how the caller authenticated:
// logout revokes the access token it was called with, and API keys are managed only from a
// signed-in session. The edge forwards no caller-supplied metadata, so these cannot be forged.
const (
	MDCredential   = "x-mgx-credential"
	MDTokenID      = "x-mgx-token-id"
	MDTokenFamily  = "x-mgx-token-family"
	MDTokenExpires = "x-mgx-token-expires"
)

// WithCredential adds p's credential to ctx's outgoing metadata, for the in-process AuthService.
func WithCredential(ctx context.Context, p Principal) context.Context {
	kv := []string{MDCredential, string(p.Credential)}
	if p.TokenID != "" {
		kv = append(kv, MDTokenID, p.TokenID, MDTokenFamily, p.Family, MDTokenExpires, strconv.FormatInt(p.Expires.Unix(), 10))
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// credentialOf reads what WithCredential sent: the kind of credential and, for an access token,
// its id, family and expiry.
func credentialOf(ctx context.Context) Principal {
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) string {
		if v := md.Get(k); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	p := Principal{Credential: Credential(one(MDCredential)), TokenID: one(MDTokenID), Family: one(MDTokenFamily)}
	if exp, err := strconv.ParseInt(one(MDTokenExpires), 10, 64); err == nil {
		p.Expires = time.Unix(exp, 0)
	}
	return p
}
