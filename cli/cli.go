// Package cli is imaged's command line for users of a server: upload, process, submit, ocr,
// detect, watch and health, on top of package client. cmd/imaged dispatches these commands here;
// the one thing it hands in is the in-process pipeline of process --local (Env.Local), which it
// builds as serve does.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/client"
	"github.com/imaged/imaged/settings"
)

// Env is what a command may use of the world: no command reads a global.
type Env struct {
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// Local builds the pipeline process --local runs: the one imaged serve runs, on the same
	// IMAGED_* settings. nil: --local is refused.
	Local func(getenv func(string) string) (*Pipeline, error)
	// Terminal reports whether w is a terminal, where progress bars are drawn; nil: w is an
	// *os.File on a terminal.
	Terminal func(w io.Writer) bool
	// Version goes into the User-Agent.
	Version string
}

// Pipeline is an in-process pipeline: the processor, the input limits the server checks
// uploads against, and what to call when done with it.
type Pipeline struct {
	Processor imaged.Processor
	Limits    imaged.Limits
	Close     func()
}

// command is one subcommand.
type command struct {
	name    string
	args    string // what follows the name in the synopsis
	summary string // one line, for imaged -h
	help    string // the rest of its help, after the flags
	flags   func(fs *pflag.FlagSet, o *options)
	run     func(ctx context.Context, e *Env, o *options, args []string) error
	// minArgs, maxArgs bound the arguments (maxArgs -1: any number).
	minArgs, maxArgs int
	// timeout is the default of --timeout (0: client.DefaultTimeout).
	timeout time.Duration
}

// commands lists the subcommands in the order imaged -h shows them.
var commands = []*command{&uploadCommand, &processCommand, &submitCommand, &ocrCommand, &detectCommand,
	&watchCommand, &healthCommand}

func lookup(name string) *command {
	i := slices.IndexFunc(commands, func(c *command) bool { return c.name == name })
	if i < 0 {
		return nil
	}
	return commands[i]
}

// Has reports whether name is a command of this package.
func Has(name string) bool { return lookup(name) != nil }

// Summary lists the commands, one a line, for the binary's usage.
func Summary() string {
	var b strings.Builder
	for _, c := range commands {
		synopsis := c.name
		for _, f := range strings.Fields(c.args) {
			if !strings.HasPrefix(f, "[") {
				synopsis += " " + f
				break
			}
		}
		fmt.Fprintf(&b, "  %-16s %s\n", synopsis, c.summary)
	}
	return strings.TrimRight(b.String(), "\n")
}

// options are the flags every command has, and the ones some share.
type options struct {
	url, key string
	json     bool
	timeout  time.Duration

	ops         []string // --op
	output      string   // -o
	params      []string // --param
	local       bool     // process --local
	concurrency int      // submit --concurrency
	ready       bool     // health --ready
	accept      string   // process --accept
}

const commonHelp = `The server is --url, else IMAGED_URL, else http://127.0.0.1 on the port of IMAGED_ADDR (:8000 when
unset); the API key is --key, else IMAGED_KEY. Exit status: 0 on success, 1 on any failure.`

// Run runs the command args[0] with its arguments. -h prints the command's help on stdout.
func Run(ctx context.Context, args []string, e Env) error {
	if len(args) == 0 {
		return errors.New("no command given")
	}
	name := args[0]
	cmd := lookup(name)
	if cmd == nil {
		return fmt.Errorf("unknown command %q", name)
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	o := &options{}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	if cmd.flags != nil {
		cmd.flags(fs, o)
	}
	timeout := cmd.timeout
	if timeout == 0 {
		timeout = client.DefaultTimeout
	}
	fs.StringVar(&o.url, "url", e.Getenv("IMAGED_URL"), "the server's base URL (`URL`) [IMAGED_URL]")
	fs.StringVar(&o.key, "key", e.Getenv("IMAGED_KEY"), "the API key to send (`KEY`) [IMAGED_KEY]")
	fs.BoolVar(&o.json, "json", false, "write JSON on stdout, for scripts")
	fs.DurationVar(&o.timeout, "timeout", timeout, "longest wait for one call to the server")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(e.Stdout, helpOf(name, cmd, fs))
			return nil
		}
		return fmt.Errorf("%s: %v (see imaged %s -h)", name, err, name)
	}
	rest := fs.Args()
	if len(rest) < cmd.minArgs || (cmd.maxArgs >= 0 && len(rest) > cmd.maxArgs) {
		return fmt.Errorf("usage: imaged %s %s (see imaged %s -h)", name, cmd.args, name)
	}
	return cmd.run(ctx, &e, o, rest)
}

func helpOf(name string, cmd *command, fs *pflag.FlagSet) string {
	return fmt.Sprintf("usage: imaged %s %s\n\n%s\n\nflags:\n%s\n%s\n\n%s\n", name, cmd.args, cmd.summary,
		fs.FlagUsagesWrapped(100), strings.TrimSpace(cmd.help), commonHelp)
}

// client returns a client of the server the options name.
func (e *Env) client(o *options) (*client.Client, error) {
	base := o.url
	if base == "" {
		addr := e.Getenv("IMAGED_ADDR")
		if addr == "" {
			addr = ":8000"
		}
		base = settings.BaseURL("", addr)
	}
	return client.New(base, client.WithKey(o.key), client.WithTimeout(o.timeout),
		client.WithUserAgent("imaged-cli/"+e.Version))
}

// printJSON writes v as indented JSON on stdout.
func (e *Env) printJSON(v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// terminal reports whether progress may be drawn on w.
func (e *Env) terminal(w io.Writer) bool {
	if e.Terminal != nil {
		return e.Terminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errorView is an error as --json output shows it.
type errorView struct {
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func viewError(err error) *errorView {
	if err == nil {
		return nil
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return &errorView{Status: ce.StatusCode, Code: ce.Code, Message: ce.Message, Field: ce.Field}
	}
	return &errorView{Message: err.Error()}
}

// failures is the error of a command some of whose items failed (each reported already).
func failures(failed, total int, what string) error {
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d %s failed", failed, total, what)
}
