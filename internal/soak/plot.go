package soak

import (
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot draws four panels over time (minutes): RSS per process, p50/p99 latency of the
// synchronous requests, tasks queued, and 5xx / unexpected answers; kill windows are shaded
// and the end of the warm-up is a dashed line.
func Plot(path, title string, samples []Sample, kills []Window, warmup time.Duration, procs []string) error {
	minutes := func(d time.Duration) float64 { return d.Minutes() }
	type series struct {
		name string
		y    func(Sample) (float64, bool)
	}
	panels := []struct {
		title, ylabel string
		series        []series
	}{
		{"resident memory per process", "RSS MiB", nil},
		{"latency of synchronous requests (process, ocr, detect)", "ms", []series{
			{"p50", func(s Sample) (float64, bool) { return s.P50, s.Requests > 0 }},
			{"p99", func(s Sample) (float64, bool) { return s.P99, s.Requests > 0 }},
		}},
		{"queue depth", "tasks queued", []series{
			{"tasks_queued", func(s Sample) (float64, bool) { return s.Queued, true }},
		}},
		{"errors per sample", "answers", []series{
			{"5xx or no answer", func(s Sample) (float64, bool) { return float64(s.Errors5xx), true }},
			{"unexpected 4xx/2xx", func(s Sample) (float64, bool) { return float64(s.Unexpected), true }},
		}},
	}
	for _, name := range procs {
		panels[0].series = append(panels[0].series, series{name, func(s Sample) (float64, bool) {
			v, ok := s.RSS[name]
			return float64(v) / (1 << 20), ok
		}})
	}

	rows := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if i == 0 {
			p.Title.Text = title + " — " + pn.title
		}
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = pn.ylabel
		p.Y.Min = 0
		p.Legend.Top = true
		ymax := 1.0
		var lines []*plotter.Line
		for j, se := range pn.series {
			var xys plotter.XYs
			for _, s := range samples {
				if v, ok := se.y(s); ok {
					xys = append(xys, plotter.XY{X: minutes(s.At), Y: v})
					ymax = max(ymax, v)
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(j)
			l.Width = vg.Points(1.2)
			lines = append(lines, l)
			p.Legend.Add(se.name, l)
		}
		ymax *= 1.1
		for _, k := range kills {
			poly, err := plotter.NewPolygon(plotter.XYs{{X: minutes(k.From), Y: 0}, {X: minutes(k.To), Y: 0},
				{X: minutes(k.To), Y: ymax}, {X: minutes(k.From), Y: ymax}})
			if err != nil {
				return err
			}
			poly.Color = color.RGBA{R: 255, G: 215, B: 215, A: 255}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		if wu, err := plotter.NewLine(plotter.XYs{{X: minutes(warmup), Y: 0}, {X: minutes(warmup), Y: ymax}}); err == nil {
			wu.Color = color.Gray{Y: 120}
			wu.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(wu)
		}
		for _, l := range lines {
			p.Add(l)
		}
		p.Y.Max = ymax
		if len(samples) > 0 {
			p.X.Min, p.X.Max = 0, minutes(samples[len(samples)-1].At)
		}
		rows[i] = []*plot.Plot{p}
	}

	img := vgimg.New(vg.Points(900), vg.Points(1100))
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6),
		PadRight: vg.Points(10), PadY: vg.Points(10)}
	canvases := plot.Align(rows, t, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
