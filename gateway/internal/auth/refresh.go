package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
)

// Refresh implements gatewayv1.AuthServiceServer: the presented token is rotated (marked used) and a
// new pair issued in the same family. A used token presented again revokes its whole family (OAuth
// 2.0 Security BCP, refresh token rotation with reuse detection) — unless it comes within the grace
// period (GATEWAY_REFRESH_REUSE_GRACE) after its rotation: then it is a concurrent refresh (two tabs,
// a retry after a lost answer) and gets the very pair the rotation issued.
//
// The new pair is made before the token is consumed, so that the rotation and the record of its
// outcome are one atomic step: whoever loses the race finds the winner's pair already stored.
func (s *Service) Refresh(ctx context.Context, req *gatewayv1.RefreshRequest) (*gatewayv1.RefreshResponse, error) {
	tp, err := s.refresh(ctx, req.GetRefreshToken())
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.RefreshResponse{AccessToken: tp.access, TokenType: "bearer", ExpiresIn: tp.expiresIn, RefreshToken: tp.refresh}, nil
}

func (s *Service) refresh(ctx context.Context, token string) (tokenPair, error) {
	h := digest(token)
	rt, err := s.store.Refresh(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return tokenPair{}, ErrInvalidToken
	}
	if err != nil {
		return tokenPair{}, err
	}
	if revoked, err := s.store.FamilyRevoked(ctx, rt.Family); err != nil {
		return tokenPair{}, err
	} else if revoked {
		return tokenPair{}, ErrInvalidToken
	}
	u, err := s.store.User(ctx, rt.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return tokenPair{}, ErrInvalidToken
	}
	if err != nil {
		return tokenPair{}, err
	}
	next, err := s.issue(ctx, u, rt.Family)
	if err != nil {
		return tokenPair{}, err
	}
	sealed, err := seal(token, next)
	if err != nil {
		return tokenPair{}, err
	}
	outcome, rt, successor, err := s.store.RotateRefresh(ctx, h, sealed, s.opts.RefreshGrace)
	if err == nil && outcome == store.Rotated {
		return next, nil
	}
	// This call's pair is not handed out: its refresh token must not stay valid.
	if derr := s.store.DeleteRefresh(context.WithoutCancel(ctx), digest(next.refresh)); derr != nil {
		s.logger.WarnContext(ctx, "delete an unused refresh token", "err", derr)
	}
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		// A rotated token came back after the grace period: it leaked, and whoever holds the newest
		// one may be the thief. Revoke the whole family, access tokens included; the owner signs in
		// again.
		s.logger.WarnContext(ctx, "refresh token reused, revoking its family", "user_id", rt.UserID)
		if rerr := s.store.RevokeFamily(ctx, rt.Family, s.opts.RefreshTTL); rerr != nil {
			return tokenPair{}, rerr
		}
		s.revocations.revokeFamily(rt.Family, s.opts.AccessTTL)
		return tokenPair{}, ErrInvalidToken
	case errors.Is(err, store.ErrNotFound):
		return tokenPair{}, ErrInvalidToken
	case err != nil:
		return tokenPair{}, err
	}
	// Rotated concurrently, within the grace period: the winner's pair.
	return open(token, successor)
}

// sealedPair is a token pair as it waits, sealed, for concurrent refreshes of the token it replaced.
type sealedPair struct {
	Access    string `json:"a"`
	Refresh   string `json:"r"`
	ExpiresIn int32  `json:"e"`
}

// successorKey is the AES-256 key that seals the pair replacing a refresh token. It derives from the
// token itself, which Redis never holds (records are addressed by its SHA-256, a different hash of
// it): a dump of Redis does not reveal the pair, and only a caller presenting the token opens it.
func successorKey(token string) []byte {
	sum := sha256.Sum256([]byte("mgx refresh successor v1\x00" + token))
	return sum[:]
}

func successorAEAD(token string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(successorKey(token))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(token string, tp tokenPair) ([]byte, error) {
	aead, err := successorAEAD(token)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(sealedPair{Access: tp.access, Refresh: tp.refresh, ExpiresIn: tp.expiresIn})
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, []byte(digest(token))), nil
}

func open(token string, sealed []byte) (tokenPair, error) {
	aead, err := successorAEAD(token)
	if err != nil {
		return tokenPair{}, err
	}
	if len(sealed) < aead.NonceSize() {
		return tokenPair{}, fmt.Errorf("open refresh successor: %d bytes", len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(digest(token)))
	if err != nil {
		return tokenPair{}, fmt.Errorf("open refresh successor: %w", err)
	}
	var p sealedPair
	if err := json.Unmarshal(plain, &p); err != nil {
		return tokenPair{}, fmt.Errorf("open refresh successor: %w", err)
	}
	return tokenPair{access: p.Access, refresh: p.Refresh, expiresIn: p.ExpiresIn}, nil
}
