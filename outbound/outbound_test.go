package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// tripwire is the tests' last line: it runs in the dialer right before connect and fails any
// address outside 127.0.0.0/8, so that a bug in the policy can never send a packet off the
// machine. Any call it refuses fails the test.
type tripwire struct {
	t     *testing.T
	fired atomic.Int64
}

var loopback8 = netip.MustParsePrefix("127.0.0.0/8")

func (tw *tripwire) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !loopback8.Contains(ap.Addr().Unmap()) {
		tw.fired.Add(1)
		return fmt.Errorf("tripwire: the test tried to connect to %s", address)
	}
	return nil
}

// mapResolver answers from a table, so no test ever asks a real DNS server.
type mapResolver map[string][]string

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := m[strings.ToLower(strings.TrimSuffix(host, "."))]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		// As net.Resolver does for A records: IPv4 comes back IPv4-mapped.
		out = append(out, netip.AddrFrom16(netip.MustParseAddr(a).As16()))
	}
	return out, nil
}

// listenOn starts an HTTP server on a given loopback address.
func listenOn(t *testing.T, ip string, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func TestHostileURLsAreRefused(t *testing.T) {
	var hits atomic.Int64
	_, port := listenOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("secret"))
	}))
	// An allow-listed server on 127.0.0.2 that redirects wherever ?to= says.
	_, rport := listenOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/loop" {
			http.Redirect(w, r, "/loop", http.StatusFound)
			return
		}
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	tw := &tripwire{t: t}
	c := New(Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Resolver: mapResolver{
			"rebind.test":     {"127.0.0.1"},
			"both.test":       {"10.0.0.1", "127.0.0.1"},
			"v6only.test":     {"::1"},
			"metadata.test":   {"169.254.169.254"},
			"cdn.example.com": {"127.0.0.2"}, // a public-looking name of the allow-listed server
			"localhost":       {"127.0.0.1", "::1"},
		},
		Control:        tw.control,
		MaxRedirects:   3,
		ConnectTimeout: time.Second,
		Timeout:        3 * time.Second,
	})
	target := "127.0.0.1:" + port
	via := func(to string) string { return "http://cdn.example.com:" + rport + "/r?to=" + to }

	hostile := []struct{ url, reason string }{
		{"http://" + target + "/", "loopback"},
		{"http://localhost:" + port + "/", "loopback"},
		{"http://2130706433:" + port + "/", "non-standard notation"},
		{"http://0x7f000001:" + port + "/", "non-standard notation"},
		{"http://0x7f.0.0.1:" + port + "/", "non-standard notation"},
		{"http://0177.0.0.1:" + port + "/", "non-standard notation"},
		{"http://017700000001:" + port + "/", "non-standard notation"},
		{"http://127.1:" + port + "/", "non-standard notation"},
		{"http://127.0.0.1.:" + port + "/", "non-standard notation"},
		{"http://0.0.0.0:" + port + "/", "0.0.0.0/8"},
		{"http://0:" + port + "/", "non-standard notation"},
		{"http://[::]:" + port + "/", "unspecified"},
		{"http://[::1]:" + port + "/", "loopback"},
		{"http://[::ffff:127.0.0.1]:" + port + "/", "loopback"},
		{"http://[::ffff:7f00:1]:" + port + "/", "loopback"},
		{"http://[0:0:0:0:0:ffff:127.0.0.1]:" + port + "/", "loopback"},
		{"http://[::127.0.0.1]:" + port + "/", "IPv4-compatible"},
		{"http://[64:ff9b::127.0.0.1]:" + port + "/", "NAT64"},
		{"http://[2002:7f00:1::1]:" + port + "/", "6to4"},
		{"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"},
		{"http://[fe80::1%25lo]:" + port + "/", "link-local"},
		{"http://[fd00::1]/", "unique local"},
		{"http://[ff02::1]/", "multicast"},
		{"http://[2001:db8::1]/", "documentation"},
		{"http://10.0.0.1/", "private"},
		{"http://172.16.5.4/", "private"},
		{"http://192.168.1.1/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "link-local"},
		{"http://100.64.0.1/", "carrier-grade NAT"},
		{"http://100.127.255.254/", "carrier-grade NAT"},
		{"http://224.0.0.1/", "multicast"},
		{"http://255.255.255.255/", "broadcast"},
		{"http://240.0.0.1/", "reserved"},
		{"http://192.0.2.10/", "documentation"},
		{"http://198.18.0.1/", "benchmarking"},
		{"http://rebind.test:" + port + "/", "the host rebind.test resolves to an address that is loopback"},
		{"http://both.test:" + port + "/", "private"},
		{"http://v6only.test:" + port + "/", "loopback"},
		{"http://metadata.test/", "link-local"},
		{"http://user:pw@cdn.example.com:" + rport + "/", "credentials"},
		{"ftp://cdn.example.com/x.png", "only http and https"},
		{"file:///etc/passwd", "only http and https"},
		{"gopher://127.0.0.1:" + port + "/", "only http and https"},
		{via("http://" + target + "/"), "loopback"},
		{via("http://rebind.test:" + port + "/"), "loopback"},
		{via("http://[::ffff:127.0.0.1]:" + port + "/"), "loopback"},
		{via("http://2130706433:" + port + "/"), "non-standard notation"},
		{via("http://169.254.169.254/"), "link-local"},
		{via("file:///etc/passwd"), "only http and https"},
		{"http://cdn.example.com:" + rport + "/loop", "more than 3 redirects"},
	}
	if len(hostile) < 25 {
		t.Fatalf("only %d hostile URLs", len(hostile))
	}
	for _, h := range hostile {
		_, err := c.Fetch(t.Context(), h.url, "source_url")
		var e *imaged.Error
		if !errors.As(err, &e) || e.Code != imaged.EInvalid || e.Field != "source_url" {
			t.Errorf("Fetch(%s) = %v; want invalid_argument on source_url", h.url, err)
			continue
		}
		if !strings.Contains(e.Message, h.reason) {
			t.Errorf("Fetch(%s): %q does not name the reason %q", h.url, e.Message, h.reason)
		}
	}
	// The address a name resolved to goes to the server's log, never to the client.
	for _, h := range []struct{ url, addr string }{{"http://rebind.test:" + port + "/", "127.0.0.1"}, {"http://metadata.test/", "169.254.169.254"}} {
		_, err := c.Fetch(t.Context(), h.url, "source_url")
		if msg := imaged.ErrorMessage(err); strings.Contains(msg, h.addr) || !strings.Contains(msg, "resolves to an address that is") {
			t.Errorf("Fetch(%s): %q", h.url, msg)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback target was reached %d times", n)
	}
	if n := tw.fired.Load(); n != 0 {
		t.Fatalf("the policy let %d connections through to addresses off the machine (the tripwire stopped them)", n)
	}
}

func TestTripwireHolds(t *testing.T) {
	// With the policy opened to everything, only the tripwire stands between the test and the
	// network: it must stop the connection before it is made.
	tw := &tripwire{t: t}
	c := New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Control: tw.control,
		Resolver: mapResolver{"public.test": {"93.184.215.14"}}, Timeout: 2 * time.Second})
	if _, err := c.Fetch(t.Context(), "http://public.test/", "source_url"); err == nil {
		t.Fatal("a fetch off the machine succeeded")
	}
	if tw.fired.Load() != 1 {
		t.Fatalf("tripwire fired %d times, want 1", tw.fired.Load())
	}
}

func TestPublicAddressPassesThePolicy(t *testing.T) {
	tw := &tripwire{t: t}
	c := New(Config{Control: tw.control, Resolver: mapResolver{"public.test": {"93.184.215.14"}}, Timeout: 2 * time.Second})
	_, err := c.Fetch(t.Context(), "http://public.test/", "source_url")
	if err == nil || tw.fired.Load() != 1 {
		t.Fatalf("a public address was refused by the policy rather than reaching the dialer: %v (tripwire %d)", err, tw.fired.Load())
	}
}

func TestAllowListedFetch(t *testing.T) {
	srv, port := listenOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(make([]byte, 2000))
		case "/chunked":
			w.(http.Flusher).Flush()
			w.Write(make([]byte, 2000))
		case "/missing":
			http.NotFound(w, r)
		case "/slow":
			time.Sleep(2 * time.Second)
		case "/hop":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			if r.Header.Get("User-Agent") != "imaged-test" {
				w.WriteHeader(400)
			}
			w.Write([]byte("image"))
		}
	}))
	_ = srv
	tw := &tripwire{t: t}
	c := New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Control: tw.control,
		MaxBytes: 1000, Timeout: time.Second, UserAgent: "imaged-test"})
	base := "http://127.0.0.1:" + port
	if b, err := c.Fetch(t.Context(), base+"/ok", "source_url"); err != nil || string(b) != "image" {
		t.Fatalf("Fetch(allow-listed) = %q, %v", b, err)
	}
	if b, err := c.Fetch(t.Context(), base+"/hop", "source_url"); err != nil || string(b) != "image" {
		t.Fatalf("Fetch(redirect to allow-listed) = %q, %v", b, err)
	}
	for path, want := range map[string]string{
		"/big":     imaged.ETooLarge,
		"/chunked": imaged.ETooLarge,
		"/missing": imaged.EInvalid,
		"/slow":    imaged.EInvalid,
	} {
		_, err := c.Fetch(t.Context(), base+path, "source_url")
		if imaged.ErrorCode(err) != want {
			t.Errorf("Fetch(%s) = %v, want %s", path, err, want)
		}
	}
	if _, err := c.Fetch(t.Context(), base+"/missing", "source_url"); !strings.Contains(imaged.ErrorMessage(err), "404") {
		t.Errorf("a 404 is reported as %q", imaged.ErrorMessage(err))
	}
	if _, err := c.Fetch(t.Context(), base+"/slow", "source_url"); !strings.Contains(imaged.ErrorMessage(err), "within 1s") {
		t.Errorf("a timeout is reported as %q", imaged.ErrorMessage(err))
	}
	if _, err := c.Fetch(t.Context(), "not a url", "source_url"); imaged.ErrorCode(err) != imaged.EInvalid {
		t.Errorf("a relative URL: %v", err)
	}
}

func TestHostAllowList(t *testing.T) {
	_, port := listenOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, "http://other.test:"+r.URL.Query().Get("p")+"/", http.StatusFound)
			return
		}
		w.Write([]byte("ok"))
	}))
	tw := &tripwire{t: t}
	c := New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Control: tw.control,
		AllowHosts: []string{"images.test", "*.cdn.test"},
		Resolver:   mapResolver{"images.test": {"127.0.0.1"}, "a.cdn.test": {"127.0.0.1"}, "cdn.test": {"127.0.0.1"}, "other.test": {"127.0.0.1"}}})
	for host, ok := range map[string]bool{"images.test": true, "IMAGES.TEST": true, "a.cdn.test": true, "cdn.test": false, "other.test": false} {
		_, err := c.Fetch(t.Context(), "http://"+host+":"+port+"/", "source_url")
		if (err == nil) != ok {
			t.Errorf("Fetch from %s: %v, want allowed=%v", host, err, ok)
		}
	}
	_, err := c.Fetch(t.Context(), "http://images.test:"+port+"/away?p="+port, "source_url")
	if err == nil || !strings.Contains(imaged.ErrorMessage(err), "not on the list") {
		t.Errorf("a redirect off the host list: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"8.8.8.8": "", "1.1.1.1": "", "93.184.215.14": "", "2606:4700:4700::1111": "", "::ffff:8.8.8.8": "",
		"127.0.0.1": "loopback", "127.255.255.254": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "::ffff:10.1.2.3": "private", "172.31.255.255": "private", "172.32.0.1": "",
		"100.63.255.255": "", "100.64.0.0": "carrier-grade", "0.1.2.3": "0.0.0.0/8", "::": "unspecified",
		"fe80::1": "link-local", "fc00::1": "unique local", "64:ff9b::808:808": "NAT64", "::8.8.8.8": "IPv4-compatible",
		"2002:808:808::": "6to4", "ff05::2": "multicast", "4000::1": "not a global unicast", "192.0.0.8": "IETF",
	} {
		got := Classify(netip.MustParseAddr(addr))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("Classify(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseLooseIPv4(t *testing.T) {
	for host, want := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "0x7f.1": "127.0.0.1", "0177.0.0.1": "127.0.0.1",
		"127.1": "127.0.0.1", "10.1.65535": "10.1.255.255", "0": "0.0.0.0", "127.0.0.1.": "127.0.0.1",
		"example.com": "", "1.2.3.4.5": "", "256.1": "", "0x": "0.0.0.0", "08": "", "1..2": "", "4294967296": "",
	} {
		ip, ok := parseLooseIPv4(host)
		if (want == "") == ok || (ok && ip.String() != want) {
			t.Errorf("parseLooseIPv4(%q) = %v, %v; want %q", host, ip, ok, want)
		}
	}
}
