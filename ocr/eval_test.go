package ocr

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

type sample struct {
	name  string
	img   Image
	truth string
}

func (s sample) clean() bool { return strings.HasPrefix(s.name, "clean-") }

func loadImage(t testing.TB, path string) Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	im := Image{Width: b.Dx(), Height: b.Dy(), Bands: 3, Data: make([]byte, b.Dx()*b.Dy()*3)}
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := (y*b.Dx() + x) * 3
			im.Data[i], im.Data[i+1], im.Data[i+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
		}
	}
	return im
}

var _ image.Image // image/png registers through image

func loadEvalSet(t testing.TB) []sample {
	t.Helper()
	paths, err := filepath.Glob("testdata/eval/*.png")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no evaluation set in testdata/eval (scripts/ocr-eval/gen.sh builds it): %v", err)
	}
	sort.Strings(paths)
	var set []sample
	for _, p := range paths {
		truth, err := os.ReadFile(strings.TrimSuffix(p, ".png") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, sample{name: strings.TrimSuffix(filepath.Base(p), ".png"), img: loadImage(t, p), truth: string(truth)})
	}
	return set
}

// normalize folds whitespace runs, line breaks included, into single spaces.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

func levenshtein[T comparable](a, b []T) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// score holds edit counts summed over samples, so the rates are over the whole set.
type score struct {
	charErrs, chars int
	wordsRight      int
	words           int
	seconds         float64
	n               int
}

func (s *score) add(truth, got string, d time.Duration) {
	tr, gr := []rune(normalize(truth)), []rune(normalize(got))
	s.charErrs += levenshtein(tr, gr)
	s.chars += len(tr)
	tw, gw := strings.Fields(truth), strings.Fields(got)
	// Word accuracy: truth words matched by the alignment, i.e. words minus word edits, floored.
	s.wordsRight += max(0, len(tw)-levenshtein(tw, gw))
	s.words += len(tw)
	s.seconds += d.Seconds()
	s.n++
}

func (s score) cer() float64     { return 100 * float64(s.charErrs) / float64(max(1, s.chars)) }
func (s score) wordAcc() float64 { return 100 * float64(s.wordsRight) / float64(max(1, s.words)) }

// evaluate runs eng over the set and returns the clean-subset and whole-set scores.
func evaluate(t *testing.T, eng Engine, set []sample, opts Options) (clean, all score) {
	t.Helper()
	for _, s := range set {
		start := time.Now()
		res, err := eng.Recognize(context.Background(), s.img, opts)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		d := time.Since(start)
		var one score
		one.add(s.truth, res.Text, d)
		if one.charErrs > 0 {
			t.Logf("%-32s CER %5.1f%%  got %q", s.name, one.cer(), normalize(res.Text))
		}
		all.add(s.truth, res.Text, d)
		if s.clean() {
			clean.add(s.truth, res.Text, d)
		}
	}
	return clean, all
}

func report(t *testing.T, engine string, clean, all score) {
	t.Logf("%-9s clean: CER %.2f%% words %.1f%% | all: CER %.2f%% words %.1f%% | %.0f ms/image",
		engine, clean.cer(), clean.wordAcc(), all.cer(), all.wordAcc(), 1000*all.seconds/float64(all.n))
}
