package config

import (
	"fmt"
	"strings"

	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/tracing"
)

// tracingConfig is the OpenTelemetry side of imaged. It is part of Config.
type tracingConfig struct {
	TraceExporter    string
	TraceEndpoint    string
	TraceFile        string
	TraceSampleRatio float64
}

func tracingSettings(c *Config) []settings.Setting {
	return []settings.Setting{
		settings.New("trace-exporter", "IMAGED_TRACE_EXPORTER", "where OpenTelemetry spans go: none, otlp (OTLP over HTTP) or file (JSON lines)", settings.String(&c.TraceExporter, tracing.ExporterNone)),
		settings.New("trace-endpoint", "IMAGED_TRACE_ENDPOINT", "OTLP/HTTP endpoint, e.g. http://otel-collector:4318 (unset = the OTEL_EXPORTER_OTLP_* variables, else localhost:4318)", settings.String(&c.TraceEndpoint, "")),
		settings.New("trace-file", "IMAGED_TRACE_FILE", "file the file exporter appends spans to, one JSON object a line", settings.String(&c.TraceFile, "")),
		settings.New("trace-sample-ratio", "IMAGED_TRACE_SAMPLE_RATIO", "share of new traces recorded, 0..1; a caller's sampled traceparent is always followed", settings.Float(&c.TraceSampleRatio, 1)),
	}
}

func (c *Config) validateTracing() error {
	switch {
	case !settings.OneOf(c.TraceExporter, tracing.ExporterNone, tracing.ExporterOTLP, tracing.ExporterFile):
		return fmt.Errorf("setting IMAGED_TRACE_EXPORTER: must be none, otlp or file")
	case c.TraceExporter == tracing.ExporterFile && c.TraceFile == "":
		return fmt.Errorf("setting IMAGED_TRACE_FILE: must name a file when IMAGED_TRACE_EXPORTER is file")
	case c.TraceEndpoint != "" && !strings.HasPrefix(c.TraceEndpoint, "http://") && !strings.HasPrefix(c.TraceEndpoint, "https://"):
		return fmt.Errorf("setting IMAGED_TRACE_ENDPOINT: must be an http:// or https:// URL")
	case c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1:
		return fmt.Errorf("setting IMAGED_TRACE_SAMPLE_RATIO: must be between 0 and 1")
	}
	return nil
}

// TracingOn reports whether spans are exported, so the stores and queue get traced.
func (c *Config) TracingOn() bool {
	return c.TraceExporter != "" && c.TraceExporter != tracing.ExporterNone
}
