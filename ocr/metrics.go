package ocr

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ocr op's collectors.
type Metrics struct {
	// Characters counts extracted characters by engine and language set ("eng+deu").
	Characters *prometheus.CounterVec
	// Duration is the time of one recognition by engine, preprocessing included.
	Duration *prometheus.HistogramVec
}

// DurationBuckets span one short line on Tesseract (≈20 ms) to a dense page on a loaded
// machine.
var DurationBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the collectors and registers them on reg when reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Characters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocr_text_characters_extracted_total", Help: "Characters of text extracted by OCR, by engine and language set.",
		}, []string{"engine", "language"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ocr_duration_seconds", Help: "Duration of one OCR recognition, by engine.", Buckets: DurationBuckets,
		}, []string{"engine"}),
	}
	if reg != nil {
		reg.MustRegister(m.Characters, m.Duration)
	}
	return m
}
