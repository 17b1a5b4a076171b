package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/imaged/imaged/client"
)

func paramFlag(fs *pflag.FlagSet, o *options) {
	fs.StringArrayVarP(&o.params, "param", "p", nil, "an option of the op, `KEY=VALUE` (repeat); values as in --op, or JSON")
}

var ocrCommand = command{
	name: "ocr", args: "[flags] FILE", minArgs: 1, maxArgs: 1,
	summary: "read the text of an image",
	flags:   paramFlag,
	help: `Runs the ocr op (POST /v1/ocr) and prints the text; --json prints the whole answer: lines, words,
boxes, confidences, engine, timings. Options (-p): engine tesseract|paddle|hybrid,
languages (eng;deu, or one as JSON: '["deu"]'), hocr, raw, preprocess (JSON).

  imaged ocr scan.png
  imaged ocr scan.png -p engine=hybrid -p 'languages=eng;deu' --json
  imaged ocr scan.png -p 'languages=["deu"]' -p 'preprocess={"deskew":true}'`,
	run: func(ctx context.Context, e *Env, o *options, args []string) error {
		return analyse(ctx, e, o, args[0], (*client.Client).OCR, func(raw json.RawMessage) error {
			var r struct {
				Text     string   `json:"text"`
				Warnings []string `json:"warnings"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			for _, w := range r.Warnings {
				fmt.Fprintln(e.Stderr, "imaged: warning:", w)
			}
			fmt.Fprintln(e.Stdout, strings.TrimRight(r.Text, "\n"))
			return nil
		})
	},
}

var detectCommand = command{
	name: "detect", args: "[flags] FILE", minArgs: 1, maxArgs: 1,
	summary: "find objects in an image",
	flags:   paramFlag,
	help: `Runs the detect op (POST /v1/detect) and prints a line per object: class, confidence, box
(x1,y1 top-left, x2,y2 bottom-right, in pixels); --json prints the whole answer. Options (-p):
model, confidence (0–1), iou, classes (cat;dog), max_detections.

  imaged detect street.jpg
  imaged detect street.jpg -p confidence=0.3 -p 'classes=person;car' --json`,
	run: func(ctx context.Context, e *Env, o *options, args []string) error {
		return analyse(ctx, e, o, args[0], (*client.Client).Detect, func(raw json.RawMessage) error {
			var r struct {
				Detections []struct {
					ClassName  string  `json:"class_name"`
					Confidence float64 `json:"confidence"`
					Box        struct{ X1, Y1, X2, Y2 float64 }
				} `json:"detections"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			if len(r.Detections) == 0 {
				fmt.Fprintln(e.Stderr, "imaged: no objects found")
			}
			for _, d := range r.Detections {
				fmt.Fprintf(e.Stdout, "%-16s %.2f  %.0f,%.0f %.0f,%.0f\n", d.ClassName, d.Confidence, d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2)
			}
			return nil
		})
	},
}

// analyse sends FILE to an analysis route and prints the answer: whole with --json, else as
// human does.
func analyse(ctx context.Context, e *Env, o *options, path string,
	call func(*client.Client, context.Context, client.AnalysisRequest) (json.RawMessage, error),
	human func(json.RawMessage) error) error {
	params, err := parseParams(o.params)
	if err != nil {
		return err
	}
	c, err := e.client(o)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	raw, err := call(c, ctx, client.AnalysisRequest{File: &client.File{Name: filepath.Base(path), Reader: f}, Options: params})
	if err != nil {
		return err
	}
	if !o.json {
		return human(raw)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(e.Stdout)
	return err
}
