package outbound

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// blocked are the address ranges no outbound request may reach unless allow-listed, with the
// reason a refusal gives. Order matters: the first match names the reason. IPv4-mapped IPv6
// addresses are unmapped before they are looked up here, so ::ffff:127.0.0.1 is loopback.
var blocked = func() []struct {
	prefix netip.Prefix
	reason string
} {
	list := []struct{ cidr, reason string }{
		{"0.0.0.0/8", "in 0.0.0.0/8 (this network)"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "in the carrier-grade NAT range 100.64.0.0/10"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "reserved for IETF protocol assignments"},
		{"192.0.2.0/24", "reserved for documentation"},
		{"192.88.99.0/24", "a 6to4 relay address"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "reserved for benchmarking"},
		{"198.51.100.0/24", "reserved for documentation"},
		{"203.0.113.0/24", "reserved for documentation"},
		{"224.0.0.0/4", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"240.0.0.0/4", "reserved"},

		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "an IPv4-compatible IPv6 address"},
		{"64:ff9b::/96", "a NAT64 address (it reaches IPv4 through a translator)"},
		{"64:ff9b:1::/48", "a NAT64 address (it reaches IPv4 through a translator)"},
		{"100::/64", "discard-only"},
		{"2001::/32", "a Teredo address (it embeds an IPv4 address)"},
		{"2001:2::/48", "reserved for benchmarking"},
		{"2001:10::/28", "reserved (ORCHID)"},
		{"2001:20::/28", "reserved (ORCHIDv2)"},
		{"2001:db8::/32", "reserved for documentation"},
		{"2002::/16", "a 6to4 address (it embeds an IPv4 address)"},
		{"3fff::/20", "reserved for documentation"},
		{"5f00::/16", "reserved for segment routing"},
		{"fc00::/7", "a unique local (private) address"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	}
	out := make([]struct {
		prefix netip.Prefix
		reason string
	}, len(list))
	for i, b := range list {
		out[i].prefix = netip.MustParsePrefix(b.cidr)
		out[i].reason = b.reason
	}
	return out
}()

// globalUnicast is where every public IPv6 address lives.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// Classify says why ip must not be reached, or "" when it is a public address.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not a valid address"
	}
	ip = ip.Unmap().WithZone("")
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			return b.reason
		}
	}
	if ip.Is6() && !globalUnicast.Contains(ip) {
		return "not a global unicast address"
	}
	return ""
}

// parseLooseIPv4 reads the IPv4 notations inet_aton accepts beyond dotted decimal: one to four
// parts, each decimal, octal (leading 0) or hex (leading 0x), the last filling the remaining
// bytes (2130706433, 0x7f.1, 0177.0.0.1). Such hosts are refused: some resolvers read them as
// addresses, others as names, and no legitimate URL needs them.
func parseLooseIPv4(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	parts := strings.Split(host, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base, digits := 10, p
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*uint(i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*uint(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// RefusedError is an outbound request the address policy refused.
type RefusedError struct {
	Host   string
	Addr   netip.Addr // the refused address, when one is known
	Reason string
}

// Public is the refusal as the person who sent the URL may read it: the policy class, never an
// address a host name resolved to (Error, for the server's log, names it).
func (e *RefusedError) Public() string {
	if !e.Addr.IsValid() {
		return e.Error()
	}
	if e.Host == "" {
		return fmt.Sprintf("the host resolves to an address that is %s", e.Reason)
	}
	if ip, err := netip.ParseAddr(e.Host); err == nil && ip.Unmap().WithZone("") == e.Addr {
		// The caller wrote the address itself.
		return fmt.Sprintf("the address %s is %s", e.Host, e.Reason)
	}
	return fmt.Sprintf("the host %s resolves to an address that is %s", e.Host, e.Reason)
}

func (e *RefusedError) Error() string {
	if e.Addr.IsValid() {
		if e.Host != "" && e.Host != e.Addr.String() {
			return fmt.Sprintf("%s resolves to %s, which is %s", e.Host, e.Addr, e.Reason)
		}
		return fmt.Sprintf("the address %s is %s", e.Addr, e.Reason)
	}
	if e.Host != "" {
		return fmt.Sprintf("the host %s is refused: %s", e.Host, e.Reason)
	}
	return e.Reason
}
