package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/client"
)

// maxBatch is the most items the server takes in one batch; larger folders go as several.
const maxBatch = 100

var submitCommand = command{
	name: "submit", args: "[flags] DIR --op OP... [-o OUTDIR]", minArgs: 1, maxArgs: 1,
	summary: "process every image of a folder as a batch; download the results",
	flags: func(fs *pflag.FlagSet, o *options) {
		opFlag(fs, o)
		fs.StringVarP(&o.output, "output", "o", "", "the folder (`DIR`) the results go to, made if missing; none: results stay on the server")
		fs.IntVar(&o.concurrency, "concurrency", 4, "`N` uploads and downloads at once")
	},
	help: opSyntax + `

submit uploads each file of DIR (not its subfolders, not hidden files), queues one batch of
them through the pipeline (POST /v1/batches; a batch per 100 files), follows it live (a
progress bar on a terminal) and downloads each result into OUTDIR as the file's name with the
extension of the output format (photo.jpg → photo.webp; the full name stays when two files
share a stem: a.jpg.webp, a.png.webp); a pipeline that only analyses writes NAME.json. A file
the server refuses is reported and skipped; the exit status is 1 when any file failed.

  imaged submit photos/ --op resize:width=1200 --op convert:format=webp -o web/
  imaged submit scans/ --op ocr --json > report.json`,
	run: runSubmit,
}

// submitted is one file of submit, from upload to result.
type submitted struct {
	File    string     `json:"file"`
	ImageID string     `json:"image_id,omitempty"`
	TaskID  string     `json:"task_id,omitempty"`
	Status  string     `json:"status"` // a task status, or "skipped" when the upload was refused
	Output  string     `json:"output,omitempty"`
	Error   *errorView `json:"error,omitempty"`
	stem    string
}

type submitReport struct {
	BatchIDs []string       `json:"batch_ids"`
	Counts   map[string]int `json:"counts"`
	Items    []*submitted   `json:"items"`
	byTask   map[string]*submitted
}

func runSubmit(ctx context.Context, e *Env, o *options, args []string) error {
	ops, err := parseOps(o.ops)
	if err != nil {
		return err
	}
	c, err := e.client(o)
	if err != nil {
		return err
	}
	items, err := listImages(args[0])
	if err != nil {
		return err
	}
	if o.output != "" {
		if err := os.MkdirAll(o.output, 0o755); err != nil {
			return err
		}
	}
	rep := &submitReport{Items: items, byTask: map[string]*submitted{}, Counts: map[string]int{}}

	bar := e.progress(o, len(items), "uploading ")
	forEach(ctx, len(items), o.concurrency, func(i int) {
		it := items[i]
		img, err := c.UploadFile(ctx, it.File)
		if err != nil {
			it.Status, it.Error = "skipped", viewError(err)
		} else {
			it.ImageID = img.ID
		}
		bar.add()
	})
	bar.finish()
	if err := ctx.Err(); err != nil {
		return err
	}
	var ids []string
	byImage := map[string]*submitted{}
	for _, it := range items {
		if it.ImageID != "" {
			ids = append(ids, it.ImageID)
			byImage[it.ImageID] = it
		}
	}
	for start := 0; start < len(ids); start += maxBatch {
		chunk := ids[start:min(start+maxBatch, len(ids))]
		b, err := c.CreateBatch(ctx, client.BatchRequest{ImageIDs: chunk, Ops: ops})
		if err != nil {
			return fmt.Errorf("creating the batch: %w", err)
		}
		rep.BatchIDs = append(rep.BatchIDs, b.ID)
		for i, tid := range b.TaskIDs {
			it := byImage[chunk[i]]
			it.TaskID, it.Status = tid, imaged.StatusQueued
			rep.byTask[tid] = it
		}
	}
	if err := follow(ctx, e, o, c, rep, len(ids)); err != nil {
		return err
	}
	if err := collect(ctx, e, o, c, rep); err != nil {
		return err
	}
	for _, it := range items {
		rep.Counts[it.Status]++
	}
	if o.json {
		if err := e.printJSON(rep); err != nil {
			return err
		}
	} else {
		for _, it := range items {
			switch {
			case it.Error != nil:
				fmt.Fprintf(e.Stdout, "%-9s %s: %s\n", it.Status, it.File, it.Error.Message)
			case it.Output != "":
				fmt.Fprintf(e.Stdout, "%-9s %s → %s\n", it.Status, it.File, it.Output)
			default:
				fmt.Fprintf(e.Stdout, "%-9s %s (task %s)\n", it.Status, it.File, it.TaskID)
			}
		}
	}
	return failures(len(items)-rep.Counts[imaged.StatusCompleted], len(items), "files")
}

// listImages lists the files of dir (no subfolders, no hidden files) by name, each with the stem
// its result is named after.
func listImages(dir string) ([]*submitted, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var items []*submitted
	stems := map[string]int{}
	for _, d := range entries {
		if strings.HasPrefix(d.Name(), ".") || !d.Type().IsRegular() {
			continue
		}
		stem := strings.TrimSuffix(d.Name(), filepath.Ext(d.Name()))
		stems[stem]++
		items = append(items, &submitted{File: filepath.Join(dir, d.Name()), stem: stem})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s holds no files", dir)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].File < items[j].File })
	for _, it := range items {
		if stems[it.stem] > 1 {
			it.stem = filepath.Base(it.File)
		}
	}
	return items, nil
}

// follow shows the batches' progress from their event streams until every task is done.
func follow(ctx context.Context, e *Env, o *options, c *client.Client, rep *submitReport, total int) error {
	bar := e.progress(o, total, "processing")
	defer bar.finish()
	done := map[string]bool{}
	mark := func(taskID, status string) {
		if imaged.IsTerminal(status) && !done[taskID] && rep.byTask[taskID] != nil {
			done[taskID] = true
			bar.set(len(done))
		}
	}
	for _, id := range rep.BatchIDs {
		err := c.WatchBatch(ctx, id, func(ev client.Event) error {
			if ev.Type == "batch" {
				b, err := ev.Batch()
				if err != nil {
					return err
				}
				for _, t := range b.Items {
					mark(t.ID, t.Status)
				}
				return nil
			}
			if x, err := ev.Event(); err == nil && x.TaskID != "" {
				status := x.Status
				if status == "" {
					status = strings.TrimPrefix(ev.Type, "task.")
				}
				mark(x.TaskID, status)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("following batch %s: %w", id, err)
		}
	}
	return nil
}

// collect reads each batch's outcome and downloads the results.
func collect(ctx context.Context, e *Env, o *options, c *client.Client, rep *submitReport) error {
	var tasks []imaged.Task
	for _, id := range rep.BatchIDs {
		b, err := c.Batch(ctx, id)
		if err != nil {
			return fmt.Errorf("reading batch %s: %w", id, err)
		}
		tasks = append(tasks, b.Items...)
	}
	var mu sync.Mutex
	forEach(ctx, len(tasks), o.concurrency, func(i int) {
		t := tasks[i]
		it := rep.byTask[t.ID]
		if it == nil {
			return
		}
		status, out, err := t.Status, "", error(nil)
		switch {
		case t.Status != imaged.StatusCompleted:
			if t.Error != nil {
				err = fmt.Errorf("%s: %s", t.Error.Code, t.Error.Message)
			} else {
				err = fmt.Errorf("the task is %s", t.Status)
			}
		case o.output == "":
		case t.Result != nil && t.Result.Output != nil:
			out = filepath.Join(o.output, it.stem+"."+imaged.ExtensionOf(t.Result.Output.Format))
			err = writeOutput(e, out, func(w io.Writer) error { _, err := c.TaskResult(ctx, t.ID, w); return err })
		case t.Result != nil:
			out = filepath.Join(o.output, it.stem+".json")
			err = writeOutput(e, out, func(w io.Writer) error {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(t.Result.Analyses)
			})
		}
		mu.Lock()
		defer mu.Unlock()
		it.Status = status
		if err != nil {
			it.Error, out = viewError(err), ""
			if status == imaged.StatusCompleted {
				it.Status = "undownloaded"
			}
		}
		it.Output = out
	})
	return ctx.Err()
}

// forEach calls fn for 0..n-1, at most limit at once, until ctx ends.
func forEach(ctx context.Context, n, limit int, fn func(i int)) {
	if limit < 1 {
		limit = 1
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
