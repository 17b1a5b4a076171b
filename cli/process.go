package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/client"
)

var uploadCommand = command{
	name: "upload", args: "[flags] FILE...", minArgs: 1, maxArgs: -1,
	summary: "upload images; print each one's id",
	help: `Each file is uploaded on its own: one that the server refuses (not an image, broken, too large)
is reported and the others still go. Prints a line per file: id, file, format, size; with
--json a list of {"file", "image"} or {"file", "error"}.

  imaged upload photos/*.jpg`,
	run: runUpload,
}

// uploaded is one file of upload and submit: its image, or why it has none.
type uploaded struct {
	File  string        `json:"file"`
	Image *imaged.Image `json:"image,omitempty"`
	Error *errorView    `json:"error,omitempty"`
}

func runUpload(ctx context.Context, e *Env, o *options, files []string) error {
	c, err := e.client(o)
	if err != nil {
		return err
	}
	results := make([]uploaded, len(files))
	failed := 0
	for i, f := range files {
		img, err := c.UploadFile(ctx, f)
		results[i] = uploaded{File: f, Image: img, Error: viewError(err)}
		if err != nil {
			failed++
			fmt.Fprintf(e.Stderr, "imaged: %s: %v\n", f, err)
			continue
		}
		if !o.json {
			fmt.Fprintf(e.Stdout, "%s  %s  %s %dx%d %d bytes\n", img.ID, f, img.Format, img.Width, img.Height, img.Bytes)
		}
	}
	if o.json {
		if err := e.printJSON(results); err != nil {
			return err
		}
	}
	return failures(failed, len(files), "uploads")
}

var processCommand = command{
	name: "process", args: "[flags] FILE --op OP... -o OUT", minArgs: 1, maxArgs: 1,
	summary: "run a pipeline over an image and write the result",
	flags: func(fs *pflag.FlagSet, o *options) {
		opFlag(fs, o)
		fs.StringVarP(&o.output, "output", "o", "", "the `FILE` the image goes to; - for stdout")
		fs.BoolVar(&o.local, "local", false, "run the pipeline in this process, with no server (libvips here)")
		fs.StringVar(&o.accept, "accept", "", "the `TYPES` convert:format=auto may choose from, e.g. image/avif,image/webp")
	},
	help: opSyntax + `

The server runs the pipeline at once (POST /v1/process) and answers the image, which goes to
-o. A pipeline that analyses (info, ocr, detect) answers JSON, printed on stdout. --local runs
the very pipeline imaged serve runs, on the same IMAGED_* settings, in this process: the same
input gives the same bytes.

  imaged process photo.jpg --op resize:width=800 --op convert:format=webp -o photo.webp
  imaged process photo.jpg --op resize:w=200,h=200,fit=cover -o - > thumb.jpg
  imaged process photo.jpg --op info --json
  imaged process photo.jpg --local --op grayscale --op convert:format=png -o gray.png`,
	run: runProcess,
}

func runProcess(ctx context.Context, e *Env, o *options, args []string) error {
	ops, err := parseOps(o.ops)
	if err != nil {
		return err
	}
	return processFile(ctx, e, o, args[0], ops)
}

// processResult is what process prints: the file written, or the analyses.
type processResult struct {
	Output      string            `json:"output,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Width       int               `json:"width,omitempty"`
	Height      int               `json:"height,omitempty"`
	Bytes       int               `json:"bytes,omitempty"`
	Analyses    []imaged.Analysis `json:"analyses,omitempty"`
	Stored      *imaged.Output    `json:"stored,omitempty"`
}

func processFile(ctx context.Context, e *Env, o *options, path string, ops []imaged.Op) error {
	var res *client.ProcessResult
	var err error
	if o.local {
		res, err = processLocally(ctx, e, path, ops, o.accept)
	} else {
		res, err = processRemotely(ctx, e, o, path, ops, o.accept)
	}
	if err != nil {
		return err
	}
	out := processResult{Analyses: res.Analyses, Stored: res.Output}
	if res.Data != nil {
		if o.output == "" {
			return errors.New("the answer is an image: give -o FILE (or -o - for stdout)")
		}
		if err := writeOutput(e, o.output, func(w io.Writer) error { _, err := w.Write(res.Data); return err }); err != nil {
			return err
		}
		out.Output, out.ContentType, out.Width, out.Height, out.Bytes = o.output, res.ContentType, res.Width, res.Height, len(res.Data)
	}
	switch {
	case o.json:
		return e.printJSON(out)
	case res.Data == nil:
		return e.printJSON(out)
	case o.output != "-":
		fmt.Fprintf(e.Stdout, "%s  %s %dx%d %d bytes\n", o.output, out.ContentType, out.Width, out.Height, out.Bytes)
	}
	return nil
}

func processRemotely(ctx context.Context, e *Env, o *options, path string, ops []imaged.Op, accept string) (*client.ProcessResult, error) {
	c, err := e.client(o)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.Process(ctx, client.ProcessRequest{File: &client.File{Name: filepath.Base(path), Reader: f}, Ops: ops, Accept: accept})
}

// processLocally runs the pipeline as the server's POST /v1/process does: the input checked
// from its header against the same limits, the ops validated, then run.
func processLocally(ctx context.Context, e *Env, path string, ops []imaged.Op, accept string) (*client.ProcessResult, error) {
	if e.Local == nil {
		return nil, errors.New("--local is not available in this build")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := e.Local(e.Getenv)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if _, err := imaged.Probe(data, p.Limits); err != nil {
		return nil, fmt.Errorf("%s: %s", path, errorText(err))
	}
	if err := p.Processor.Validate(ops); err != nil {
		return nil, errors.New(errorText(err))
	}
	res, err := p.Processor.Process(ctx, data, ops, imaged.ProcessOptions{Accept: accept})
	if err != nil {
		return nil, errors.New(errorText(err))
	}
	if len(res.Analyses) == 0 && !res.Changed {
		return nil, errors.New("the pipeline neither changes nor analyses the image")
	}
	out := &client.ProcessResult{Analyses: res.Analyses}
	if len(res.Analyses) == 0 {
		out.Data, out.ContentType, out.Width, out.Height = res.Data, res.ContentType, res.Width, res.Height
	}
	return out, nil
}

// writeOutput writes a file whole or not at all (a temporary file renamed into place), or to
// stdout for "-".
func writeOutput(e *Env, path string, fill func(io.Writer) error) error {
	if path == "-" {
		return fill(e.Stdout)
	}
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = fill(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
