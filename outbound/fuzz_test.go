package outbound

import (
	"net/netip"
	"testing"
)

// FuzzClassify checks the address policy against the standard library's own categories on
// any 16-byte address, in both its IPv6 and (when mapped) IPv4 form: nothing loopback,
// private, link-local, multicast or unspecified is ever called public.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:10.0.0.1", "::1", "fe80::1", "8.8.8.8", "2606:4700::1", "64:ff9b::7f00:1", "100.64.0.1"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		for _, ip := range []netip.Addr{a, a.Unmap()} {
			if Classify(ip) != "" {
				continue
			}
			u := ip.Unmap()
			if u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
				u.IsMulticast() || u.IsUnspecified() || u.IsInterfaceLocalMulticast() || !u.IsGlobalUnicast() {
				t.Fatalf("Classify(%s) calls a special address public", ip)
			}
		}
		if Classify(a) != Classify(a.Unmap()) {
			t.Fatalf("Classify(%s) = %q but its IPv4 form %s is %q", a, Classify(a), a.Unmap(), Classify(a.Unmap()))
		}
	})
}
