package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/imaged/imaged/client"
)

var healthCommand = command{
	name: "health", args: "[--ready] [flags]", maxArgs: 0, timeout: 5 * time.Second,
	summary: "ask a server whether it is live (or --ready); exit 0 or 1",
	flags: func(fs *pflag.FlagSet, o *options) {
		fs.BoolVar(&o.ready, "ready", false, "ask /health/ready (every required dependency answers) instead of /health/live")
	},
	help: `Asks GET /health/live (the process serves) or, with --ready, GET /health/ready, and exits 0 when
the answer is 200, 1 otherwise (an answer other than 200, no answer within --timeout, nothing
listening). It needs no key. Inside the container, with IMAGED_ADDR set, it needs no flag at
all, which makes it the image's HEALTHCHECK:

  HEALTHCHECK CMD ["imaged", "health"]
  imaged health --url https://imaged.example.com --ready`,
	run: runHealth,
}

func runHealth(ctx context.Context, e *Env, o *options, _ []string) error {
	c, err := e.client(o)
	if err != nil {
		return err
	}
	probe, what := (*client.Client).Live, "live"
	if o.ready {
		probe, what = (*client.Client).Ready, "ready"
	}
	h, err := probe(c, ctx)
	if o.json && h != nil {
		if jerr := e.printJSON(h); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		return fmt.Errorf("%s is not %s: %w", c.URL(), what, err)
	}
	if !o.json {
		fmt.Fprintf(e.Stdout, "%s is %s\n", c.URL(), what)
	}
	return nil
}
