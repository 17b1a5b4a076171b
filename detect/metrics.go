package detect

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// InferenceBuckets cover one inference on one thread: about 15 ms for SSD-MobileNetV2, up to
// seconds for a large YOLO on a loaded machine.
var InferenceBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type metrics struct {
	detections *prometheus.CounterVec   // model, class
	inference  *prometheus.HistogramVec // model
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detections_total", Help: "Objects detected, by model and class.",
		}, []string{"model", "class"}),
		inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "detection_inference_duration_seconds", Help: "Time in the detection model's inference, by model.",
			Buckets: InferenceBuckets,
		}, []string{"model"}),
	}
	if reg != nil {
		m.detections = register(reg, m.detections)
		m.inference = register(reg, m.inference)
	}
	return m
}

// register registers c, or returns the collector already registered under its name (a second
// Service on the same registry shares the counters).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
