package store

import "strconv"

// Every Redis key the gateway touches is built here, shaped
// `gateway:<entity>:{<tag>}:<suffix>`. The hash tag is the aggregate's id, so
// the keys one Lua script touches share a cluster slot; scripts that span two
// aggregates (a user and its email index) are split or avoided instead.

// KeyUser is the hash of a user account.
func KeyUser(userID string) string { return "gateway:user:{" + userID + "}" }

// KeyUserAPIKeys is the set of a user's API key ids.
func KeyUserAPIKeys(userID string) string { return "gateway:user:{" + userID + "}:api_keys" }

// KeyEmail maps a normalised email to its user id; SET NX on it is what makes
// emails unique.
func KeyEmail(email string) string { return "gateway:email:{" + email + "}" }

// KeyRefresh is the hash of one refresh token, addressed by the SHA-256 of
// the token so a Redis dump reveals no usable token.
func KeyRefresh(tokenHash string) string { return "gateway:refresh:{" + tokenHash + "}" }

// KeyRefreshSuccessor holds, for a short grace period after a refresh token was rotated, the pair
// that rotation issued, sealed with a key derived from the rotated token itself (see auth): a
// concurrent refresh with the same token gets the same pair instead of counting as reuse.
func KeyRefreshSuccessor(tokenHash string) string {
	return "gateway:refresh:{" + tokenHash + "}:successor"
}

// KeyRefreshFamilyRevoked marks a refresh-token family (every token rotated
// from one login) as revoked.
func KeyRefreshFamilyRevoked(family string) string {
	return "gateway:refresh_family:{" + family + "}:revoked"
}

// KeyAccessTokenRevoked marks one access token (by its jti) as revoked until it expires (logout).
func KeyAccessTokenRevoked(tokenID string) string {
	return "gateway:access_token:{" + tokenID + "}:revoked"
}

// KeyUserStreams holds a user's open streams (event streams, log follows, streamed commands) as
// quota slots, shared by every gateway replica.
func KeyUserStreams(userID string) string { return "gateway:user:{" + userID + "}:streams" }

// KeyAPIKey is the hash of one API key (its secret only as a SHA-256).
func KeyAPIKey(keyID string) string { return "gateway:api_key:{" + keyID + "}" }

// KeyLoginFailuresAccount counts recent failed logins for one email.
func KeyLoginFailuresAccount(email string) string {
	return "gateway:login_failures:{" + email + "}:account"
}

// KeyLoginFailuresIP counts recent failed logins from one client address.
func KeyLoginFailuresIP(ip string) string { return "gateway:login_failures:{" + ip + "}:ip" }

// KeyRateLimit is the request counter of one subject (user id or client
// address) for the fixed window starting at windowStart (unix ms).
func KeyRateLimit(subject string, windowStart int64) string {
	return "gateway:rate:{" + subject + "}:" + strconv.FormatInt(windowStart, 10)
}
