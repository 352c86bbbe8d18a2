package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrBlockedAddress is wrapped by every refusal of the address guard (see BlockedError).
var ErrBlockedAddress = errors.New("web: address not allowed")

// BlockedError is a connection fetch_url refused: the address is not on the public internet.
type BlockedError struct {
	// Host is the name the URL gave (or the address itself).
	Host string
	// Addr is the address the host resolved to.
	Addr netip.Addr
	// Reason names the range ("loopback", "private", "link-local"…).
	Reason string
}

func (e *BlockedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("refused to connect to %s (%s resolves to %s, a %s address): fetch_url only reaches public internet addresses", e.Host, e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("refused to connect to %s (a %s address): fetch_url only reaches public internet addresses", e.Addr, e.Reason)
}

func (e *BlockedError) Unwrap() error { return ErrBlockedAddress }

// blockedRanges are the non-public ranges beyond what netip's predicates name, with the reason
// shown to the model. Order matters only for the reason given.
var blockedRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// Ranges that embed an IPv4 address, which is what a packet finally reaches.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64l    = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// classify returns why addr is not a public internet address, or "" when it is.
func classify(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		if addr.Is6() {
			return "unique local (private)"
		}
		return "private"
	case addr.IsLinkLocalUnicast():
		if addr == netip.AddrFrom4([4]byte{169, 254, 169, 254}) {
			return "link-local (cloud metadata)"
		}
		return "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(addr) {
			return r.reason
		}
	}
	if addr.Is6() {
		// An address that embeds an IPv4 one goes where the IPv4 one goes.
		b := addr.As16()
		var v4 netip.Addr
		switch {
		case nat64.Contains(addr):
			v4 = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case nat64l.Contains(addr):
			v4 = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixToFour.Contains(addr):
			v4 = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		}
		if v4.IsValid() {
			if why := classify(v4); why != "" {
				return why + " (embedded in IPv6)"
			}
		}
	}
	return ""
}

// guard decides, at dial time, which addresses a fetch may connect to. It runs on the address the
// connection is really made to — after DNS resolution, for every redirect hop — so a name that
// resolves (or rebinds) to an internal address is refused like the address itself.
type guard struct {
	allowPrefixes []netip.Prefix
	allowAddrs    map[netip.AddrPort]bool
}

// newGuard parses the allow-list: "ip:port" allows exactly that endpoint (a test's own server),
// "prefix/len" or a bare IP allows those addresses on any port (an intranet the operator trusts).
func newGuard(allow []string) (*guard, error) {
	g := &guard{allowAddrs: map[netip.AddrPort]bool{}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if ap, err := netip.ParseAddrPort(a); err == nil {
			g.allowAddrs[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			g.allowPrefixes = append(g.allowPrefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			g.allowPrefixes = append(g.allowPrefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		return nil, fmt.Errorf("%w: AGENTD_FETCH_ALLOW: %q is not an ip:port, an IP or a CIDR prefix", ErrInvalidConfig, a)
	}
	return g, nil
}

// check returns a *BlockedError for an endpoint that is neither public nor allowed.
func (g *guard) check(host string, ap netip.AddrPort) error {
	addr := ap.Addr().Unmap()
	why := classify(addr)
	if why == "" || g.allowAddrs[netip.AddrPortFrom(addr, ap.Port())] {
		return nil
	}
	for _, p := range g.allowPrefixes {
		if p.Contains(addr) {
			return nil
		}
	}
	return &BlockedError{Host: host, Addr: addr, Reason: why}
}

// control is a net.Dialer Control function: it sees the resolved address before connect(2), so a
// refused address never receives a packet.
func (g *guard) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &BlockedError{Host: host, Reason: "unparsable (" + address + ")"}
		}
		return g.check(host, ap)
	}
}

// hostOf strips the port from a dial address.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// PublicOnly is a net.Dialer Control function that refuses, with a *BlockedError, every address
// that is not on the public internet. The preview browser's egress proxy dials what a page asks
// for with it, so pages are held to the same line as fetch_url (without fetch_url's allow-list).
func PublicOnly(host string) func(network, address string, c syscall.RawConn) error {
	return (&guard{allowAddrs: map[netip.AddrPort]bool{}}).control(host)
}
