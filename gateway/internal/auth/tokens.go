package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	issuer   = "mgx-gateway"
	audience = "mgx"

	refreshPrefix = "rt_"
	apiKeyPrefix  = "mgx_"
)

// RoleOperator is the role of users listed in GATEWAY_OPERATOR_EMAILS; it
// travels upstream as x-mgx-user-role.
const RoleOperator = "operator"

// Principal is an authenticated caller.
type Principal struct {
	UserID string
	Role   string
	// Credential says what the caller presented: an access token (a signed-in session) or an API key.
	Credential Credential
	// TokenID, Family and Expires describe an access token: its id (jti), the login it belongs to
	// (the family of its refresh tokens) and its expiry. Empty for API keys.
	TokenID string
	Family  string
	Expires time.Time
}

// Credential is the kind of credential a caller authenticated with.
type Credential string

// Kinds of credential.
const (
	CredentialAccessToken Credential = "access_token"
	CredentialAPIKey      Credential = "api_key"
)

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role,omitempty"`
	// Family is the login the token was issued for: logout and refresh-token reuse revoke it.
	Family string `json:"fam,omitempty"`
}

// signer issues and verifies the short-lived access tokens (HS256 JWTs).
type signer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// sign issues an access token for p in the login family.
func (s signer) sign(p Principal, family string) (string, error) {
	now := s.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
			ID:        uuid.NewString(),
		},
		Role:   p.Role,
		Family: family,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
}

func (s signer) verify(token string) (Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.secret, nil },
		// Pinning the method refuses "alg: none" and RS/HS confusion.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, ErrTokenExpired
	case err != nil:
		return Principal{}, ErrInvalidToken
	case c.Subject == "":
		return Principal{}, ErrInvalidToken
	}
	p := Principal{UserID: c.Subject, Role: c.Role, Credential: CredentialAccessToken, TokenID: c.ID, Family: c.Family}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	return p, nil
}

// randomToken returns prefix followed by 256 random bits, URL-safe.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// digest is the hex SHA-256 under which refresh tokens and API key secrets
// are stored. A fast hash is right here: these are 256-bit random values,
// not guessable passwords.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// newAPIKey returns a key id and the full secret `mgx_<id hex>_<random>`;
// the id inside lets verification find the record without a scan.
func newAPIKey() (id, secret string) {
	u := uuid.New()
	return u.String(), apiKeyPrefix + hex.EncodeToString(u[:]) + "_" + randomToken("")
}

// parseAPIKey splits a presented key into its id and the whole secret.
func parseAPIKey(key string) (id string, ok bool) {
	rest, found := strings.CutPrefix(key, apiKeyPrefix)
	if !found {
		return "", false
	}
	idHex, _, found := strings.Cut(rest, "_")
	if !found || len(idHex) != 32 {
		return "", false
	}
	raw, err := hex.DecodeString(idHex)
	if err != nil {
		return "", false
	}
	u, err := uuid.FromBytes(raw)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// IsAPIKey reports whether a credential is shaped like an API key rather
// than an access token.
func IsAPIKey(credential string) bool { return strings.HasPrefix(credential, apiKeyPrefix) }

func equalDigest(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func keyPrefix(secret string) string {
	if len(secret) < 12 {
		return secret
	}
	return fmt.Sprintf("%s…", secret[:12])
}
