// Package redact hides credentials in connection strings before they reach a
// log line or an error message.
//
// It parses by hand instead of using net/url because the multi-host forms we
// accept (redis+sentinel://h1:26379,[::1]:26379) are rejected by url.Parse,
// and a string that fails to parse must still come out redacted.
package redact

import (
	"strings"
)

// Mask replaces every secret value.
const Mask = "xxxxx"

// URL returns s with the userinfo password and any secret-looking query
// parameter (password, secret, token, key) replaced by Mask. Strings that are
// not URLs come back unchanged.
func URL(s string) string {
	schemeEnd := strings.Index(s, "://")
	if schemeEnd < 0 {
		return s
	}
	rest := s[schemeEnd+3:]

	authorityEnd := strings.IndexAny(rest, "/?#")
	if authorityEnd < 0 {
		authorityEnd = len(rest)
	}
	authority, tail := rest[:authorityEnd], rest[authorityEnd:]

	// The last '@' ends the userinfo: a password may itself contain '@'.
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hosts := authority[:at], authority[at+1:]
		if user, _, hasPassword := strings.Cut(userinfo, ":"); hasPassword {
			userinfo = user + ":" + Mask
		}
		authority = userinfo + "@" + hosts
	}

	return s[:schemeEnd+3] + authority + redactQuery(tail)
}

func redactQuery(tail string) string {
	path, query, ok := strings.Cut(tail, "?")
	if !ok {
		return tail
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		k, _, hasValue := strings.Cut(p, "=")
		if hasValue && SecretName(k) {
			params[i] = k + "=" + Mask
		}
	}
	out := path + "?" + strings.Join(params, "&")
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

// SecretName reports whether a parameter or variable name conventionally
// carries a credential: its last word is password, passwd, secret, token or
// apikey, or it ends in api_key. Only the last word counts, so that
// GATEWAY_ACCESS_TOKEN_TTL or AGENTD_MAX_TOKENS (settings about tokens, not
// tokens) stay readable in the start-up log.
func SecretName(name string) bool {
	words := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
	if len(words) == 0 {
		return false
	}
	switch last := words[len(words)-1]; last {
	case "password", "passwd", "secret", "token", "apikey":
		return true
	case "key":
		return len(words) > 1 && words[len(words)-2] == "api"
	}
	return false
}
