package imaged

import (
	"strings"
	"testing"
)

// A pipeline of stand-in plans: the walk passes each op its input's geometry, finds the largest
// image and the peak, and adds up the costs; Check names the op at fault.
func TestEstimateWalksThePipeline(t *testing.T) {
	ops := []Op{{Name: "grow"}, {Name: "copy"}, {Name: "shrink"}}
	src := Geometry{Width: 100, Height: 50, Bands: 3}
	plans := map[string]func(in Geometry) OpPlan{
		"grow": func(in Geometry) OpPlan { return Reshaped(in.Resized(in.Width*10, in.Height*10), 5) },
		"copy": func(in Geometry) OpPlan {
			return OpPlan{Out: in, Held: []Geometry{in.WithBands(4)}, Scratch: 1000, Cost: 7}
		},
		"shrink": func(in Geometry) OpPlan { p := Reshaped(in.Resized(10, 10), 1); p.Buffers = 500; return p },
	}
	e, err := EstimateWith(ops, src, func(i int, in Geometry) (OpPlan, error) { return plans[ops[i].Name](in), nil })
	if err != nil {
		t.Fatal(err)
	}
	if e.Steps[1].In != (Geometry{Width: 1000, Height: 500, Bands: 3}) || e.Steps[2].Out.Width != 10 {
		t.Fatalf("steps %+v", e.Steps)
	}
	if e.Largest.Pixels() != 500000 || e.LargestAt != 0 || e.Cost != 13 || e.Costliest != 1 {
		t.Fatalf("largest %v at %d, cost %v (dearest %d)", e.Largest, e.LargestAt, e.Cost, e.Costliest)
	}
	// The source, the buffers, and the copy's input, copy and scratch.
	if want := int64(15000 + 500 + 1500000 + 2000000 + 1000); e.Peak != want || e.PeakAt != 1 {
		t.Fatalf("peak %d at %d, want %d at 1", e.Peak, e.PeakAt, want)
	}
	for _, tc := range []struct {
		l           Limits
		code, field string
		text        string
	}{
		{Limits{MaxWidth: 999, MaxHeight: 1000}, EInvalid, "ops[0]", "grow would make the image 1000×500 pixels; the limit is 999×1000"},
		{Limits{MaxWidth: 1000, MaxHeight: 1000, MaxPixels: 400000}, EInvalid, "ops[0]", "grow would hold an image of 1000×500 pixels (0.5 MP); the limit is 0.4 MP"},
		{Limits{MaxWidth: 1000, MaxHeight: 1000, MaxPixels: 4000}, ETooLarge, "", "the image is 100×50 pixels"},
		{Limits{MaxWidth: 1000, MaxHeight: 1000, MaxPixels: 1e6, MaxCost: 12}, EInvalid, "ops[1]", "estimated at 13 cost units (about a millisecond of one core each), 7 of them for copy on 1000×500 pixels; the limit is 12"},
	} {
		err := e.Check(tc.l)
		e2, ok := err.(*Error)
		if !ok || e2.Code != tc.code || e2.Field != tc.field || !strings.Contains(e2.Message, tc.text) {
			t.Errorf("%+v: got %v (%+v), want %s %s: %s", tc.l, err, e2, tc.code, tc.field, tc.text)
		}
	}
	if err := e.Check(Limits{MaxWidth: 1000, MaxHeight: 1000, MaxPixels: 1e6}); err != nil {
		t.Fatalf("within every limit: %v", err)
	}
}

// Estimate plans with the registered plans, and names an op that has none.
func TestEstimateNeedsAPlan(t *testing.T) {
	RegisterOp(OpSpec{Name: "test-planned", Plan: PerMegapixel(2)})
	e, err := Estimate([]Op{{Name: "test-planned"}}, Geometry{Width: 1000, Height: 1000, Bands: 1})
	if err != nil || e.Cost != 2 || e.Steps[0].Held[0].Pixels() != 1e6 {
		t.Fatalf("%+v, %v", e, err)
	}
	_, err = Estimate([]Op{{Name: "test-planned"}, {Name: "nowhere"}}, Geometry{Width: 1, Height: 1})
	if e, ok := err.(*Error); !ok || e.Field != "ops[1].op" {
		t.Fatalf("an op without a plan: %v", err)
	}
}
