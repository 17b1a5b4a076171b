// Package settings reads imaged's configuration: each setting is an IMAGED_* environment
// variable and a command-line flag of the same meaning (the flag wins), and every bad value
// fails start-up with an error naming the variable at fault. It also parses the value shapes
// settings share (comma lists, CIDR lists) and hides credentials in URLs written to logs.
package settings

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Setting is one configuration entry: its flag, its environment variable, the help text, and
// the function that binds the flag to its field with its default.
type Setting struct {
	Flag, Env, Help string
	Bind            Binder
}

// Binder binds a flag of the given name and help to a field, with the field's default.
type Binder func(fs *flag.FlagSet, name, help string)

// String binds a string setting.
func String(p *string, def string) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.StringVar(p, n, def, h) }
}

// Int binds an int setting.
func Int(p *int, def int) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.IntVar(p, n, def, h) }
}

// Int64 binds an int64 setting.
func Int64(p *int64, def int64) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.Int64Var(p, n, def, h) }
}

// Float binds a float64 setting.
func Float(p *float64, def float64) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.Float64Var(p, n, def, h) }
}

// Bool binds a bool setting.
func Bool(p *bool, def bool) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.BoolVar(p, n, def, h) }
}

// Duration binds a time.Duration setting.
func Duration(p *time.Duration, def time.Duration) Binder {
	return func(fs *flag.FlagSet, n, h string) { fs.DurationVar(p, n, def, h) }
}

// Bind adds every setting's flag to fs; the help names the environment variable too.
func Bind(fs *flag.FlagSet, list []Setting) {
	for _, s := range list {
		s.Bind(fs, s.Flag, s.Help+" ["+s.Env+"]")
	}
}

// FromEnv sets every bound flag whose environment variable is set (not empty), before the
// command line is parsed, so flags win. A value the flag refuses names the variable.
func FromEnv(fs *flag.FlagSet, list []Setting, getenv func(string) string) error {
	for _, s := range list {
		if v := getenv(s.Env); v != "" {
			if err := fs.Set(s.Flag, v); err != nil {
				return fmt.Errorf("setting %s: invalid value %q: %v", s.Env, v, err)
			}
		}
	}
	return nil
}

// Check is one rule of the settings: when OK is false, Setting is at fault, as Msg says.
type Check struct {
	OK      bool
	Setting string
	Msg     string
}

// FirstFailure returns the error of the first check that fails, naming its setting.
func FirstFailure(checks []Check) error {
	for _, ch := range checks {
		if !ch.OK {
			return fmt.Errorf("setting %s: %s", ch.Setting, ch.Msg)
		}
	}
	return nil
}

// OneOf reports whether v is one of opts.
func OneOf(v string, opts ...string) bool { return slices.Contains(opts, v) }

// List splits a comma-separated value, dropping blanks.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Prefixes reads comma-separated CIDRs; a bare address is a /32 or /128.
func Prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range List(s) {
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RedactURL hides the credentials of a backend URL (password, secret query parameters) so it
// can be logged.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	for _, k := range []string{"secret_key", "access_key", "password"} {
		if q.Has(k) {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// New makes a Setting: flag name, environment variable, help, and its binder.
func New(flag, env, help string, bind Binder) Setting {
	return Setting{Flag: flag, Env: env, Help: help, Bind: bind}
}

// Rule makes a Check: when ok is false, setting is at fault, as msg says.
func Rule(ok bool, setting, msg string) Check {
	return Check{OK: ok, Setting: setting, Msg: msg}
}

// BaseURL is the URL clients reach the API at: public when set, else made from the listen
// address (a wildcard host becomes 127.0.0.1).
func BaseURL(public, addr string) string {
	if public != "" {
		return strings.TrimRight(public, "/")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8000"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
