// Package auth owns the gateway's accounts and credentials: registration,
// password login with throttling, short-lived JWT access tokens, rotating
// refresh tokens, and API keys. Service is the gRPC AuthService the gateway
// serves in process; Authenticate is what the HTTP edge calls on every
// protected request.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/authn"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
)

// MDClientIP is the metadata key under which the edge passes the client's
// address to the in-process AuthService (for per-IP login throttling). The
// edge never forwards caller-supplied metadata, so it cannot be forged.
const MDClientIP = "x-mgx-client-ip"

// New accounts start with these.
const (
	defaultCredits = 100
	defaultPlan    = "free"
)

// Options configures a Service.
type Options struct {
	// JWTSecret signs access tokens (HS256); at least 32 bytes.
	JWTSecret      []byte
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	OperatorEmails []string
	// MaxFailuresAccount and MaxFailuresIP bound failed logins per email and
	// per client address within FailureWindow.
	MaxFailuresAccount int
	MaxFailuresIP      int
	FailureWindow      time.Duration
	// RefreshGrace is how long after a rotation the rotated refresh token still returns the pair
	// that replaced it (concurrent refreshes); 0 turns the grace off.
	RefreshGrace time.Duration
	// RevocationCacheTTL is how long a replica trusts that an access token is not revoked before it
	// asks Redis again (see revocations); 0 asks on every request.
	RevocationCacheTTL time.Duration
	Logger             *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements gatewayv1.AuthServiceServer.
type Service struct {
	gatewayv1.UnimplementedAuthServiceServer

	store       *store.Store
	opts        Options
	signer      signer
	revocations *revocations
	logger      *slog.Logger
}

// NewService returns the auth service over st.
func NewService(st *store.Store, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for i, e := range opts.OperatorEmails {
		opts.OperatorEmails[i] = normalizeEmail(e)
	}
	return &Service{
		store:       st,
		opts:        opts,
		signer:      signer{secret: opts.JWTSecret, ttl: opts.AccessTTL, now: opts.Now},
		revocations: newRevocations(st, opts.RevocationCacheTTL, opts.Now),
		logger:      opts.Logger,
	}
}

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (s *Service) roleOf(email string) string {
	if slices.Contains(s.opts.OperatorEmails, email) {
		return RoleOperator
	}
	return ""
}

type tokenPair struct {
	access, refresh string
	expiresIn       int32
}

// issue signs an access token and stores a refresh token of family (a new
// family per login; rotation keeps it).
func (s *Service) issue(ctx context.Context, u store.User, family string) (tokenPair, error) {
	access, err := s.signer.sign(Principal{UserID: u.ID, Role: s.roleOf(u.Email)}, family)
	if err != nil {
		return tokenPair{}, fmt.Errorf("sign access token: %w", err)
	}
	refresh := randomToken(refreshPrefix)
	if err := s.store.SaveRefresh(ctx, digest(refresh), store.RefreshToken{UserID: u.ID, Family: family}, s.opts.RefreshTTL); err != nil {
		return tokenPair{}, err
	}
	return tokenPair{access: access, refresh: refresh, expiresIn: int32(s.opts.AccessTTL.Seconds())}, nil
}

// CreateUser registers an account; Register and the demo seed share it.
func (s *Service) createUser(ctx context.Context, email, password, name string) (store.User, error) {
	email = normalizeEmail(email)
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	u := store.User{
		ID:           uuid.NewString(),
		Email:        email,
		Name:         name,
		PasswordHash: hashPassword(password),
		Credits:      defaultCredits,
		Plan:         defaultPlan,
		CreatedAt:    s.opts.Now(),
	}
	return u, s.store.CreateUser(ctx, u)
}

// EnsureUser creates the account unless its email is registered already; it
// seeds the demo account of `make run`.
func (s *Service) EnsureUser(ctx context.Context, email, password string) error {
	_, err := s.createUser(ctx, email, password, "Demo")
	if errors.Is(err, store.ErrEmailTaken) {
		return nil
	}
	return err
}

// Register implements gatewayv1.AuthServiceServer.
func (s *Service) Register(ctx context.Context, req *gatewayv1.RegisterRequest) (*gatewayv1.RegisterResponse, error) {
	u, err := s.createUser(ctx, req.GetEmail(), req.GetPassword(), strings.TrimSpace(req.GetName()))
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	tp, err := s.issue(ctx, u, uuid.NewString())
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	s.logger.InfoContext(ctx, "user registered", "user_id", u.ID)
	return &gatewayv1.RegisterResponse{AccessToken: tp.access, TokenType: "bearer", ExpiresIn: tp.expiresIn, RefreshToken: tp.refresh}, nil
}

// Login implements gatewayv1.AuthServiceServer.
func (s *Service) Login(ctx context.Context, req *gatewayv1.LoginRequest) (*gatewayv1.LoginResponse, error) {
	tp, err := s.login(ctx, normalizeEmail(req.GetEmail()), req.GetPassword())
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.LoginResponse{AccessToken: tp.access, TokenType: "bearer", ExpiresIn: tp.expiresIn, RefreshToken: tp.refresh}, nil
}

func (s *Service) login(ctx context.Context, email, password string) (tokenPair, error) {
	accountKey := store.KeyLoginFailuresAccount(email)
	ipKey := ""
	if ip := clientIP(ctx); ip != "" {
		ipKey = store.KeyLoginFailuresIP(ip)
	}
	// Refuse before checking the password: a throttled attacker must learn
	// nothing, not even from a correct guess.
	if err := s.checkThrottle(ctx, accountKey, s.opts.MaxFailuresAccount); err != nil {
		return tokenPair{}, err
	}
	if ipKey != "" {
		if err := s.checkThrottle(ctx, ipKey, s.opts.MaxFailuresIP); err != nil {
			return tokenPair{}, err
		}
	}

	u, err := s.store.UserByEmail(ctx, email)
	hash := u.PasswordHash
	if errors.Is(err, store.ErrNotFound) {
		hash = dummyHash
	} else if err != nil {
		return tokenPair{}, err
	}
	ok, verr := verifyPassword(hash, password)
	if verr != nil {
		return tokenPair{}, fmt.Errorf("user %s: %w", u.ID, verr)
	}
	if !ok || err != nil {
		for _, key := range []string{accountKey, ipKey} {
			if key == "" {
				continue
			}
			if _, _, ferr := s.store.AddFailure(ctx, key, s.opts.FailureWindow); ferr != nil {
				return tokenPair{}, ferr
			}
		}
		s.logger.InfoContext(ctx, "login failed", "reason", "invalid credentials")
		return tokenPair{}, ErrInvalidCredentials
	}
	if err := s.store.ResetFailures(ctx, accountKey); err != nil {
		return tokenPair{}, err
	}
	return s.issue(ctx, u, uuid.NewString())
}

func (s *Service) checkThrottle(ctx context.Context, key string, limit int) error {
	if limit <= 0 {
		return nil
	}
	n, ttl, err := s.store.Failures(ctx, key)
	if err != nil {
		return err
	}
	if n >= int64(limit) {
		return &ThrottledError{RetryAfter: ttl}
	}
	return nil
}

func clientIP(ctx context.Context) string {
	vals := metadata.ValueFromIncomingContext(ctx, MDClientIP)
	if len(vals) != 1 {
		return ""
	}
	addr, err := netip.ParseAddr(vals[0])
	if err != nil {
		return ""
	}
	return addr.String()
}

// Logout implements gatewayv1.AuthServiceServer: it ends the login. The access token the call was
// made with is revoked until it expires, and so is its login family (every access and refresh token
// of that login); the refresh token presented is revoked with its family when it is the caller's.
// Revoking a token that is unknown or not the caller's is not an error: logout is idempotent and must
// not reveal whose tokens exist.
func (s *Service) Logout(ctx context.Context, req *gatewayv1.LogoutRequest) (*gatewayv1.LogoutResponse, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	if cred := credentialOf(ctx); cred.Credential == CredentialAccessToken && cred.TokenID != "" {
		if err := s.store.RevokeAccessToken(ctx, cred.TokenID, cred.Expires); err != nil {
			return nil, ToStatus(ctx, s.logger, err)
		}
		s.revocations.revokeToken(cred.TokenID, cred.Expires)
		if err := s.revokeFamily(ctx, cred.Family); err != nil {
			return nil, ToStatus(ctx, s.logger, err)
		}
	}
	rt, err := s.store.RevokeRefresh(ctx, digest(req.GetRefreshToken()), userID)
	if errors.Is(err, store.ErrNotFound) {
		return &gatewayv1.LogoutResponse{}, nil
	}
	if err == nil {
		// Also the tokens rotated away earlier in this login: a copy of
		// any of them must not be replayable as "reuse" after logout.
		err = s.revokeFamily(ctx, rt.Family)
	}
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.LogoutResponse{}, nil
}

// revokeFamily revokes a login: its refresh tokens, and the access tokens issued for it.
func (s *Service) revokeFamily(ctx context.Context, family string) error {
	if family == "" {
		return nil
	}
	if err := s.store.RevokeFamily(ctx, family, s.opts.RefreshTTL); err != nil {
		return err
	}
	s.revocations.revokeFamily(family, s.opts.AccessTTL)
	return nil
}

// GetMe implements gatewayv1.AuthServiceServer.
func (s *Service) GetMe(ctx context.Context, _ *gatewayv1.GetMeRequest) (*gatewayv1.GetMeResponse, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	u, err := s.store.User(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		// The token outlived its account.
		err = ErrInvalidToken
	}
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.GetMeResponse{User: &gatewayv1.User{
		Id: u.ID, Email: u.Email, Name: u.Name, Credits: u.Credits, Plan: u.Plan,
	}}, nil
}

// CreateApiKey implements gatewayv1.AuthServiceServer. Only a signed-in session creates API keys: a
// key that could mint keys would let a leaked key outlive its own revocation through its children.
func (s *Service) CreateApiKey(ctx context.Context, req *gatewayv1.CreateApiKeyRequest) (*gatewayv1.CreateApiKeyResponse, error) { //nolint:revive // generated name
	userID, err := sessionCaller(ctx)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	id, secret := newAPIKey()
	k := store.APIKey{
		ID: id, UserID: userID, Name: req.GetName(), Prefix: keyPrefix(secret), Hash: digest(secret),
		CreatedAt: s.opts.Now(),
	}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.CreateApiKeyResponse{ApiKey: apiKeyProto(k), Secret: secret}, nil
}

// ListApiKeys implements gatewayv1.AuthServiceServer.
func (s *Service) ListApiKeys(ctx context.Context, _ *gatewayv1.ListApiKeysRequest) (*gatewayv1.ListApiKeysResponse, error) { //nolint:revive // generated name
	userID, err := caller(ctx)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	keys, err := s.store.ListAPIKeys(ctx, userID)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	resp := &gatewayv1.ListApiKeysResponse{ApiKeys: make([]*gatewayv1.ApiKey, 0, len(keys))}
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyProto(k))
	}
	return resp, nil
}

// RevokeApiKey implements gatewayv1.AuthServiceServer. Like creation it takes a signed-in session:
// one leaked key must not be able to revoke the owner's other keys.
func (s *Service) RevokeApiKey(ctx context.Context, req *gatewayv1.RevokeApiKeyRequest) (*gatewayv1.RevokeApiKeyResponse, error) { //nolint:revive // generated name
	userID, err := sessionCaller(ctx)
	if err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	if err := s.store.RevokeAPIKey(ctx, userID, req.GetId()); err != nil {
		return nil, ToStatus(ctx, s.logger, err)
	}
	return &gatewayv1.RevokeApiKeyResponse{}, nil
}

func apiKeyProto(k store.APIKey) *gatewayv1.ApiKey {
	p := &gatewayv1.ApiKey{Id: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: timestamppb.New(k.CreatedAt)}
	if !k.LastUsedAt.IsZero() {
		p.LastUsedAt = timestamppb.New(k.LastUsedAt)
	}
	return p
}

func caller(ctx context.Context) (string, error) {
	id, ok := authn.UserID(ctx)
	if !ok {
		return "", ErrNoCredentials
	}
	return id, nil
}

// sessionCaller is caller for calls that take a signed-in session (an access token), not an API key.
func sessionCaller(ctx context.Context) (string, error) {
	id, err := caller(ctx)
	if err != nil {
		return "", err
	}
	if credentialOf(ctx).Credential != CredentialAccessToken {
		return "", ErrSessionRequired
	}
	return id, nil
}

// Authenticate resolves a bearer credential (access token or API key) to its
// principal. It is called by the HTTP edge for every protected request, so
// an access token is verified by its signature and a revocation check that
// reaches Redis at most once per GATEWAY_REVOCATION_CACHE_TTL (see revocations).
func (s *Service) Authenticate(ctx context.Context, credential string) (Principal, error) {
	if credential == "" {
		return Principal{}, ErrNoCredentials
	}
	if !IsAPIKey(credential) {
		p, err := s.signer.verify(credential)
		if err != nil {
			return Principal{}, err
		}
		revoked, err := s.revocations.revoked(ctx, p)
		if err != nil {
			return Principal{}, err
		}
		if revoked {
			return Principal{}, ErrTokenRevoked
		}
		return p, nil
	}
	id, ok := parseAPIKey(credential)
	if !ok {
		return Principal{}, ErrInvalidToken
	}
	k, err := s.store.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, err
	}
	if !equalDigest(k.Hash, digest(credential)) {
		return Principal{}, ErrInvalidToken
	}
	u, err := s.store.User(ctx, k.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, err
	}
	// Recording every use would be a write per request; a minute's
	// resolution is what "last used" needs.
	if now := s.opts.Now(); now.Sub(k.LastUsedAt) > time.Minute {
		if err := s.store.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.logger.WarnContext(ctx, "record api key use", "err", err)
		}
	}
	return Principal{UserID: u.ID, Role: s.roleOf(u.Email), Credential: CredentialAPIKey}, nil
}
