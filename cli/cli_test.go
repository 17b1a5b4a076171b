package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOps(t *testing.T) {
	ops, err := parseOps([]string{
		"resize:width=800,fit=cover,enlarge=false",
		"convert:f=webp,q=80,lossless=true",
		"detect:classes=cat;dog,confidence=0.25",
		`{"op":"watermark","text":"Hello, world","size":12}`,
		"grayscale",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"enlarge":false,"fit":"cover","op":"resize","width":800}`,
		`{"format":"webp","lossless":true,"op":"convert","quality":80}`,
		`{"classes":["cat","dog"],"confidence":0.25,"op":"detect"}`,
		`{"op":"watermark","size":12,"text":"Hello, world"}`,
		`{"op":"grayscale"}`,
	}
	for i, op := range ops {
		var m map[string]any
		if err := json.Unmarshal(op.Args, &m); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(m)
		if string(got) != want[i] {
			t.Errorf("op %d: got %s, want %s", i, got, want[i])
		}
	}
	for _, bad := range [][]string{nil, {"resize:width"}, {"re size"}, {`{"op":`}, {"resize:op=x"}} {
		if _, err := parseOps(bad); err == nil {
			t.Errorf("parseOps(%q) accepted it", bad)
		}
	}
}

func TestParseParams(t *testing.T) {
	p, err := parseParams([]string{"engine=hybrid", "languages=eng;deu", "confidence=0.3", "hocr=true",
		`preprocess={"deskew":true}`})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(p)
	if string(got) != `{"confidence":0.3,"engine":"hybrid","hocr":true,"languages":["eng","deu"],"preprocess":{"deskew":true}}` {
		t.Fatalf("params: %s", got)
	}
	p, err = parseParams([]string{`languages=["eng"]`})
	if got, _ := json.Marshal(p); err != nil || string(got) != `{"languages":["eng"]}` {
		t.Fatalf("a list of one: %s %v", got, err)
	}
	for _, bad := range [][]string{{"engine"}, {"a=1", "a=2"}, {"=x"}, {"a=[1"}} {
		if _, err := parseParams(bad); err == nil {
			t.Errorf("parseParams(%q) accepted it", bad)
		}
	}
}

func run(t *testing.T, env Env, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env.Stdout = &out
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	err := Run(context.Background(), args, env)
	return out.String(), err
}

// Every command's -h is a success that prints its help, flags by their argument names.
func TestHelp(t *testing.T) {
	for _, c := range commands {
		out, err := run(t, Env{}, c.name, "-h")
		if err != nil || !strings.HasPrefix(out, "usage: imaged "+c.name+" ") || !strings.Contains(out, "--url URL") ||
			!strings.Contains(out, "IMAGED_KEY") || strings.Contains(out, "stringArray") {
			t.Errorf("%s -h: %v\n%s", c.name, err, out)
		}
	}
	out, _ := run(t, Env{}, "process", "--help")
	for _, want := range []string{"--op OP", "-o, --output FILE", "--local", "name:key=value", "semicolons"} {
		if !strings.Contains(out, want) {
			t.Errorf("process --help lacks %q", want)
		}
	}
	if s := Summary(); !strings.Contains(s, "submit DIR") || !strings.Contains(s, "watch TASK|BATCH") || !Has("health") || Has("serve") {
		t.Errorf("summary:\n%s", s)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"process"}, {"upload"}, {"watch", "a", "b"}, {"health", "extra"}, {"process", "x.jpg", "--nope"}, {"nope"}} {
		if _, err := run(t, Env{}, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
	_, err := run(t, Env{}, "process", "x.jpg", "-o", "y.jpg", "--local", "--op", "grayscale")
	if err == nil || !strings.Contains(err.Error(), "--local") {
		t.Errorf("--local without a pipeline: %v", err)
	}
}

func TestServerURL(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		flag string
		want string
	}{
		{nil, "", "http://127.0.0.1:8000"},
		{map[string]string{"IMAGED_ADDR": ":9001"}, "", "http://127.0.0.1:9001"},
		{map[string]string{"IMAGED_ADDR": ":9001", "IMAGED_URL": "https://imaged.example.com/"}, "", "https://imaged.example.com"},
		{map[string]string{"IMAGED_URL": "https://imaged.example.com"}, "http://10.1.2.3:8000", "http://10.1.2.3:8000"},
	} {
		e := &Env{Getenv: func(k string) string { return c.env[k] }}
		o := &options{url: c.flag}
		if o.url == "" {
			o.url = e.Getenv("IMAGED_URL")
		}
		cl, err := e.client(o)
		if err != nil || cl.URL() != c.want {
			t.Errorf("%v %q: got %v %v, want %s", c.env, c.flag, cl, err, c.want)
		}
	}
}

func TestListImages(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.jpg", "a.png", "b.jpg", ".hidden.jpg"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	items, err := listImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, filepath.Base(it.File)+">"+it.stem)
	}
	if strings.Join(got, " ") != "a.jpg>a.jpg a.png>a.png b.jpg>b" {
		t.Fatalf("items: %v", got)
	}
	if _, err := listImages(filepath.Join(dir, "sub")); err == nil {
		t.Fatal("an empty folder was accepted")
	}
}

// An output is written whole or not at all.
func TestWriteOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.png")
	e := &Env{}
	failed := errors.New("the download broke")
	err := writeOutput(e, path, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return failed
	})
	entries, _ := os.ReadDir(dir)
	if !errors.Is(err, failed) || len(entries) != 0 {
		t.Fatalf("a failed write left %d files (%v)", len(entries), err)
	}
	if err := writeOutput(e, path, func(w io.Writer) error { _, err := w.Write([]byte("whole")); return err }); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "whole" {
		t.Fatalf("%q %v", b, err)
	}
	var stdout bytes.Buffer
	e.Stdout = &stdout
	if err := writeOutput(e, "-", func(w io.Writer) error { _, err := w.Write([]byte("piped")); return err }); err != nil || stdout.String() != "piped" {
		t.Fatalf("-: %q %v", stdout.String(), err)
	}
}

// The bar is drawn only on a terminal, and never with --json.
func TestProgressOnlyOnATerminal(t *testing.T) {
	for _, c := range []struct {
		terminal, json bool
		drawn          bool
	}{{true, false, true}, {false, false, false}, {true, true, false}} {
		var stderr bytes.Buffer
		e := &Env{Stderr: &stderr, Terminal: func(io.Writer) bool { return c.terminal }}
		p := e.progress(&options{json: c.json}, 3, "testing")
		p.add()
		p.set(3)
		p.finish()
		if drawn := strings.Contains(stderr.String(), "3/3"); drawn != c.drawn {
			t.Errorf("terminal %v, json %v: drawn %v: %q", c.terminal, c.json, drawn, stderr.String())
		}
	}
}
