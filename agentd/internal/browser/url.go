package browser

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// ErrURLRefused is returned for a URL a check must not load: not http(s), or a host that is neither
// loopback nor *.localhost nor allowed by Config.AllowHosts.
var ErrURLRefused = errors.New("browser: URL refused")

// hostPolicy decides which hosts a check may load. Previews are reached through sandboxd's preview
// listener on this host (p<port>-<session>.preview.localhost, which chromium resolves to loopback by
// itself), never a container's bridge address, so anything else is refused unless configured.
type hostPolicy struct {
	any      bool
	exact    map[string]bool
	suffixes []string
}

func newHostPolicy(allow []string) hostPolicy {
	p := hostPolicy{exact: map[string]bool{}}
	for _, h := range allow {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "*":
			p.any = true
		case strings.HasPrefix(h, "."):
			p.suffixes = append(p.suffixes, h)
		case h != "":
			p.exact[h] = true
		}
	}
	return p
}

// check parses raw and returns it when it may be loaded.
func (p hostPolicy) check(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a URL", ErrURLRefused, raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %q: only http and https URLs can be checked", ErrURLRefused, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: %q: URLs with credentials are not checked", ErrURLRefused, raw)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrURLRefused, raw)
	}
	if p.allows(host) {
		return u, nil
	}
	return nil, fmt.Errorf("%w: %s is not a loopback or *.localhost host; previews are checked through sandboxd's preview URL on this host", ErrURLRefused, host)
}

func (p hostPolicy) allows(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Unmap().IsLoopback() {
			return true
		}
	}
	if p.any || p.exact[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// JoinPath puts a page path (with its own query and fragment, as a model writes it: "/todos?done=1")
// under a preview URL, keeping the preview's path prefix and its query (the access token).
func JoinPath(previewURL, pagePath string) (string, error) {
	base, err := url.Parse(previewURL)
	if err != nil {
		return "", fmt.Errorf("%w: preview URL %q: %w", ErrURLRefused, previewURL, err)
	}
	pagePath = strings.TrimSpace(pagePath)
	if pagePath == "" || pagePath == "/" {
		return base.String(), nil
	}
	rel, err := url.Parse(pagePath)
	if err != nil || rel.Scheme != "" || rel.Host != "" || strings.HasPrefix(pagePath, "//") {
		return "", fmt.Errorf("%w: path %q must be a path on the preview, like /about", ErrURLRefused, pagePath)
	}
	out := *base
	out.Path = strings.TrimSuffix(base.Path, "/") + "/" + strings.TrimPrefix(rel.Path, "/")
	out.RawPath = ""
	q := base.Query()
	for k, vs := range rel.Query() {
		if k == "token" {
			continue // the preview's own token wins
		}
		q[k] = vs
	}
	out.RawQuery = q.Encode()
	out.Fragment = rel.Fragment
	return out.String(), nil
}
