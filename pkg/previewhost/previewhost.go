// Package previewhost is the one definition of preview origins, shared by the gateway (which routes
// them) and sandboxd (which hands them out and serves them). A preview lives on a host of its own,
//
//	p<port>-<capability>.preview.<public host>
//
// so sandbox code never runs on the API's origin, and its credential travels in the host name
// itself: every request the page makes — the document, its assets, its WebSockets — carries it,
// with no cookie a browser could block in a third-party frame. What the capability is and how it is
// checked is sandboxd's business (sandboxd/internal/preview); this package only knows its shape.
package previewhost

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// ErrIPHost means the public URL's host is an IP address other than loopback: an IP has no
// subdomains, so there is no host name to put previews under.
var ErrIPHost = errors.New("previews need a host name: MGX_PUBLIC_URL's host is an IP address, which cannot have subdomains; " +
	"use a name with a wildcard DNS record *.preview.<name>")

// Loopback is the preview domain of a loopback public URL, and the one sandboxd's listener is also
// reached under by in-host clients (agentd's browser): browsers resolve every *.localhost name to
// loopback by themselves (RFC 6761), so no DNS is involved.
const Loopback = "preview.localhost"

// MaxCapability is the longest capability a label can hold: a DNS label is at most 63 bytes, and
// "p65535-" takes 7 of them.
const MaxCapability = 63 - len("p65535-")

// Base is where the previews of one public edge live.
type Base struct {
	// Scheme is the public URL's ("http" or "https").
	Scheme string
	// Domain is the parent of every preview host: "preview.<host>" (Loopback for a loopback IP).
	Domain string
	// Port is the public URL's explicit port, or "".
	Port string
}

// FromPublicURL returns the preview base of the public edge at publicURL (MGX_PUBLIC_URL).
func FromPublicURL(publicURL string) (Base, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return Base{}, fmt.Errorf("previewhost: public URL %q is not an absolute http(s) URL", publicURL)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	domain := "preview." + host
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return Base{}, fmt.Errorf("%w (%s)", ErrIPHost, publicURL)
		}
		domain = Loopback
	}
	return Base{Scheme: u.Scheme, Domain: domain, Port: u.Port()}, nil
}

// Suffix is what every preview host name ends with: ".preview.<host>".
func (b Base) Suffix() string { return "." + b.Domain }

// URL is the address of the preview labelled label: scheme://label.domain[:port]/.
func (b Base) URL(label string) string {
	return b.Scheme + "://" + label + "." + b.hostPort() + "/"
}

// FrameSource is the Content-Security-Policy source matching every preview origin of b.
func (b Base) FrameSource() string { return b.Scheme + "://*." + b.hostPort() }

func (b Base) hostPort() string {
	if b.Port != "" {
		return b.Domain + ":" + b.Port
	}
	return b.Domain
}

// Label is the first label of a preview host: p<port>-<capability>.
func Label(port int, capability string) string { return "p" + strconv.Itoa(port) + "-" + capability }

// labelRE is a preview host's first label. Host names are case-insensitive, so it is matched in
// lower case; the capability's alphabet is that of lower-case base32 (RFC 4648), digits and
// letters being all a DNS label may hold besides "-".
var labelRE = regexp.MustCompile(`^p([1-9][0-9]{0,4})-([a-z2-7]{1,` + strconv.Itoa(MaxCapability) + `})$`)

// Parse splits a request's Host into the preview's port and capability and the domain it was
// addressed under (lower case, without the port). ok is false for anything that is not a preview
// host of one of the domains given.
func Parse(host string, domains ...string) (port int, capability, domain string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, rest, found := strings.Cut(host, ".")
	if !found {
		return 0, "", "", false
	}
	known := false
	for _, d := range domains {
		if d != "" && rest == d {
			known = true
			break
		}
	}
	m := labelRE.FindStringSubmatch(label)
	if !known || m == nil {
		return 0, "", "", false
	}
	port, err := strconv.Atoi(m[1])
	if err != nil || port > 65535 {
		return 0, "", "", false
	}
	return port, m[2], rest, true
}

// Redact returns host with the capability of a preview label replaced by "…" (p5173-….preview.x),
// for logs: the capability is a credential, the port and domain are not. Other hosts are returned
// as they are.
func Redact(host string) string {
	label, rest, found := strings.Cut(host, ".")
	m := labelRE.FindStringSubmatch(strings.ToLower(label))
	if !found || m == nil {
		return host
	}
	return "p" + m[1] + "-…." + rest
}
