package redisclient

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Mode is the Redis deployment a URL names.
type Mode string

const (
	ModeSingle   Mode = "single"
	ModeSentinel Mode = "sentinel"
	ModeCluster  Mode = "cluster"
)

// ErrInvalidURL is wrapped by every URL parsing error.
var ErrInvalidURL = errors.New("invalid redis URL")

const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// parsed holds the options of exactly one mode.
type parsed struct {
	mode     Mode
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseURL turns any supported URL into go-redis options.
//
// The sentinel and cluster forms are rewritten into the URLs go-redis's own
// ParseFailoverURL and ParseClusterURL accept (first host in the authority,
// the others as addr= parameters), so every go-redis query parameter
// (dial_timeout, pool_size, …) works in all three forms, parsed by the
// library rather than by us.
func parseURL(raw string) (*parsed, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("%w: missing scheme", ErrInvalidURL)
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return nil, invalid(err)
		}
		return &parsed{mode: ModeSingle, single: opts}, nil
	case "redis+sentinel", "rediss+sentinel":
		return parseSentinel(strings.TrimSuffix(strings.ToLower(scheme), "+sentinel"), rest)
	case "redis+cluster", "rediss+cluster":
		return parseCluster(strings.TrimSuffix(strings.ToLower(scheme), "+cluster"), rest)
	default:
		return nil, fmt.Errorf("%w: unsupported scheme %q (want redis, rediss, unix, redis+sentinel, redis+cluster)", ErrInvalidURL, scheme)
	}
}

// multiHost is the part of a multi-host URL that net/url cannot parse
// (it rejects "h1:1,[::1]:2"), split by hand.
type multiHost struct {
	user  *url.Userinfo
	hosts []string // host:port, default port filled in
	path  string
	query url.Values
}

func splitMultiHost(rest, defPort string) (*multiHost, error) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]

	// Parse userinfo, path and query with net/url on a single-host stand-in,
	// which handles percent-encoding correctly.
	var userinfo, hostList string
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostList = authority[:at+1], authority[at+1:]
	} else {
		hostList = authority
	}
	u, err := url.Parse("redis://" + userinfo + "placeholder" + tail)
	if err != nil {
		return nil, invalid(err)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: unexpected fragment", ErrInvalidURL)
	}

	mh := &multiHost{user: u.User, path: u.Path, query: u.Query()}
	for h := range strings.SplitSeq(hostList, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			// No port (or a bare IPv6 literal in brackets): add the default.
			h = net.JoinHostPort(strings.Trim(h, "[]"), defPort)
		}
		host, port, err := net.SplitHostPort(h)
		if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || host == "" {
			return nil, fmt.Errorf("%w: bad host %q", ErrInvalidURL, h)
		}
		mh.hosts = append(mh.hosts, h)
	}
	if len(mh.hosts) == 0 {
		return nil, fmt.Errorf("%w: no hosts", ErrInvalidURL)
	}
	return mh, nil
}

// rebuild returns the go-redis URL: first host in the authority, the rest
// as addr= parameters.
func (mh *multiHost) rebuild(scheme string, user *url.Userinfo, path string, q url.Values) string {
	for _, h := range mh.hosts[1:] {
		q.Add("addr", h)
	}
	u := url.URL{Scheme: scheme, User: user, Host: mh.hosts[0], Path: path, RawQuery: q.Encode()}
	return u.String()
}

// parseSentinel handles
//
//	redis+sentinel://[user:password@]host1[:port],host2[:port]/<db>?master=<name>
//
// The userinfo authenticates to the Redis master and replicas, like in every
// other form (and as in redis-py's and Celery's sentinel URLs); sentinels
// with their own password take sentinel_username/sentinel_password
// parameters. The default sentinel port is 26379.
func parseSentinel(scheme, rest string) (*parsed, error) {
	mh, err := splitMultiHost(rest, defaultSentinelPort)
	if err != nil {
		return nil, err
	}
	q := mh.query
	master := q.Get("master")
	q.Del("master")
	if master == "" {
		master = q.Get("master_name")
	}
	q.Del("master_name")
	if master == "" {
		return nil, fmt.Errorf("%w: sentinel URL needs ?master=<name>", ErrInvalidURL)
	}
	q.Set("master_name", master)

	// go-redis reads sentinel credentials from the userinfo and the data
	// nodes' credentials from parameters: swap ours into that shape.
	if mh.user != nil {
		if name := mh.user.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := mh.user.Password(); ok {
			q.Set("password", pw)
		}
	}
	var sentinelUser *url.Userinfo
	su, sp := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	if su != "" || sp != "" {
		sentinelUser = url.UserPassword(su, sp)
	}

	opts, err := redis.ParseFailoverURL(mh.rebuild(scheme, sentinelUser, mh.path, q))
	if err != nil {
		return nil, invalid(err)
	}
	return &parsed{mode: ModeSentinel, failover: opts}, nil
}

// parseCluster handles
//
//	redis+cluster://[user:password@]host1[:port],host2[:port]
//
// The hosts are seeds: the client discovers the other nodes itself. Cluster
// mode has only database 0, so a database path is rejected rather than
// silently ignored.
func parseCluster(scheme, rest string) (*parsed, error) {
	mh, err := splitMultiHost(rest, defaultPort)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(mh.path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("%w: cluster URL cannot select database %q", ErrInvalidURL, p)
	}
	opts, err := redis.ParseClusterURL(mh.rebuild(scheme, mh.user, "", mh.query))
	if err != nil {
		return nil, invalid(err)
	}
	return &parsed{mode: ModeCluster, cluster: opts}, nil
}

// invalid wraps a parse error without the URL itself: net/url errors quote
// the whole input, password included.
func invalid(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%w: %w", ErrInvalidURL, err)
}
