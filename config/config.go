// Package config is every setting imaged reads: the Config struct, each setting bound once as an
// IMAGED_* variable and a flag (package settings), and the checks that fail start-up naming the
// setting at fault. cmd/imaged parses it and wires the adapters from it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/vips"
	"github.com/imaged/imaged/worker"
)

// Config is every setting imaged reads. Each comes from an IMAGED_* environment variable or the
// matching flag (the flag wins); a bad value fails start-up naming the setting.
type Config struct {
	Addr            string
	PublicURL       string
	DataDir         string
	DatabaseURL     string
	QueueURL        string
	StorageURL      string
	URLSecret       string
	URLExpiry       time.Duration
	Workers         int
	WorkerTypes     string
	TaskDeadline    time.Duration
	OutageDeadline  time.Duration
	TaskLease       time.Duration
	ShutdownGrace   time.Duration
	MaxAttempts     int
	RetryBackoff    time.Duration
	MaxUploadBytes  int64
	MaxWidth        int
	MaxHeight       int
	MaxFrames       int
	MaxPixels       int64
	MaxCost         int
	MaxInflight     int
	MaxWaiting      int
	VipsConcurrency int
	MemoryBudget    int
	MaxOutputBytes  int
	PollInterval    time.Duration
	LogLevel        string
	LogFormat       string
	NoMigrate       bool
	RedisURL        string
	ResultTTL       time.Duration
	MetadataTTL     time.Duration
	ResultCache     string
	BreakerFailures int
	BreakerRecovery time.Duration
	UploadFailures  int
	UploadRecovery  time.Duration
	StoreRetries    int
	StoreRetryWait  time.Duration
	ModelsDir       string
	ONNXSessions    int
	TesseractPool   int
	DetectModel     string
	DetectModels    string

	accessConfig  // config_access.go
	brokerConfig  // config_events.go
	tracingConfig // config_tracing.go
}

func allSettings(c *Config) []settings.Setting {
	return append([]settings.Setting{
		settings.New("addr", "IMAGED_ADDR", "listen address of the API", settings.String(&c.Addr, ":8000")),
		settings.New("public-url", "IMAGED_PUBLIC_URL", "base URL clients reach the API at (for signed local-disk URLs); default: the address each request was sent to (X-Forwarded-* from trusted proxies), else from addr", settings.String(&c.PublicURL, "")),
		settings.New("data-dir", "IMAGED_DATA_DIR", "directory of the embedded database and blobs", settings.String(&c.DataDir, "./data")),
		settings.New("database-url", "IMAGED_DATABASE_URL", "task store: sqlite://PATH (default DATA_DIR/imaged.db)", settings.String(&c.DatabaseURL, "")),
		settings.New("queue-url", "IMAGED_QUEUE_URL", "queue: db:// (default: the database is the queue), amqp://user:pass@host:5672/vhost?exchange=image_processing&prefix=imaged. or kafka://host:9092?topic_prefix=imaged&group=imaged-workers", settings.String(&c.QueueURL, "")),
		settings.New("storage-url", "IMAGED_STORAGE_URL", "blob store: file://DIR (default DATA_DIR/blobs) or s3://BUCKET?endpoint=…", settings.String(&c.StorageURL, "")),
		settings.New("url-secret", "IMAGED_URL_SECRET", "key signing local-disk blob URLs; default: generated once into DATA_DIR", settings.String(&c.URLSecret, "")),
		settings.New("url-expiry", "IMAGED_URL_EXPIRY", "lifetime of presigned/signed blob URLs", settings.Duration(&c.URLExpiry, time.Hour)),
		settings.New("workers", "IMAGED_WORKERS", "tasks run at once by this process; 0 = API only; default: the CPUs it may use (GOMAXPROCS, which follows a container's CPU quota)", settings.Int(&c.Workers, imaged.CPUs())),
		settings.New("types", "IMAGED_WORKER_TYPES", "task types this process's workers run, comma-separated (transform, ocr, detect); empty = all", settings.String(&c.WorkerTypes, "")),
		settings.New("task-deadline", "IMAGED_TASK_DEADLINE", "longest run of one task attempt", settings.Duration(&c.TaskDeadline, 5*time.Minute)),
		settings.New("task-outage-deadline", "IMAGED_TASK_OUTAGE_DEADLINE", "how long after its creation a task waits for unavailable dependencies (without spending attempts) before it fails", settings.Duration(&c.OutageDeadline, worker.DefaultOutageDeadline)),
		settings.New("task-lease", "IMAGED_TASK_LEASE", "how long a running task stays its worker's without a heartbeat (renewed every third of it); a dead worker's tasks run again after about this long", settings.Duration(&c.TaskLease, worker.DefaultLease)),
		settings.New("shutdown-grace", "IMAGED_SHUTDOWN_GRACE", "time requests and running tasks get to finish on SIGTERM", settings.Duration(&c.ShutdownGrace, 30*time.Second)),
		settings.New("max-attempts", "IMAGED_MAX_ATTEMPTS", "attempts per task before it fails (transient errors only are retried)", settings.Int(&c.MaxAttempts, 3)),
		settings.New("retry-backoff", "IMAGED_RETRY_BACKOFF", "first retry delay; doubles each attempt, with jitter", settings.Duration(&c.RetryBackoff, time.Second)),
		settings.New("max-upload-bytes", "IMAGED_MAX_UPLOAD_BYTES", "largest image accepted, in bytes", settings.Int64(&c.MaxUploadBytes, imaged.DefaultLimits.MaxBytes)),
		settings.New("max-width", "IMAGED_MAX_WIDTH", "widest image accepted, in pixels (read from the header)", settings.Int(&c.MaxWidth, imaged.DefaultLimits.MaxWidth)),
		settings.New("max-height", "IMAGED_MAX_HEIGHT", "tallest image accepted, in pixels (read from the header)", settings.Int(&c.MaxHeight, imaged.DefaultLimits.MaxHeight)),
		settings.New("max-pixels", "IMAGED_MAX_PIXELS", "most pixels of the largest image a pipeline makes or holds (every frame, OCR's enlarged page), planned before decoding", settings.Int64(&c.MaxPixels, imaged.DefaultLimits.MaxPixels)),
		settings.New("max-cost", "IMAGED_MAX_COST", "most estimated CPU of one pipeline, in cost units of about a millisecond of one core; 0 = no limit", settings.Int(&c.MaxCost, int(imaged.DefaultLimits.MaxCost))),
		settings.New("max-frames", "IMAGED_MAX_FRAMES", "most frames of an animated GIF or WebP a pipeline with the frames op loads", settings.Int(&c.MaxFrames, 100)),
		settings.New("max-inflight", "IMAGED_MAX_INFLIGHT", "synchronous pipelines at once; default 2×CPU", settings.Int(&c.MaxInflight, 2*imaged.CPUs())),
		settings.New("max-waiting", "IMAGED_MAX_WAITING", "synchronous requests queued for a slot before 503; default 8×CPU", settings.Int(&c.MaxWaiting, 8*imaged.CPUs())),
		settings.New("vips-concurrency", "IMAGED_VIPS_CONCURRENCY", "libvips threads per image", settings.Int(&c.VipsConcurrency, 1)),
		settings.New("memory-budget", "IMAGED_MEMORY_BUDGET", "MiB the pipelines running at once may need for decoding; 0 = 64 per CPU, -1 = unbounded", settings.Int(&c.MemoryBudget, 0)),
		settings.New("max-output-bytes", "IMAGED_MAX_OUTPUT_BYTES", "largest encoded result a pipeline may produce, in bytes", settings.Int(&c.MaxOutputBytes, vips.DefaultMaxOutputBytes)),
		settings.New("poll-interval", "IMAGED_POLL_INTERVAL", "how often the database queue looks for tasks other processes queued", settings.Duration(&c.PollInterval, 500*time.Millisecond)),
		settings.New("no-migrate", "IMAGED_NO_MIGRATE", "do not apply database migrations at start-up (run `imaged migrate up` instead)", settings.Bool(&c.NoMigrate, false)),
		settings.New("redis-url", "IMAGED_REDIS_URL", "Redis for the result and metadata caches: redis://host:6379/0 (unset = no cache)", settings.String(&c.RedisURL, "")),
		settings.New("cache-result-ttl", "IMAGED_CACHE_RESULT_TTL", "how long a finished task stays cached", settings.Duration(&c.ResultTTL, 5*time.Minute)),
		settings.New("cache-metadata-ttl", "IMAGED_CACHE_METADATA_TTL", "how long image metadata stays cached", settings.Duration(&c.MetadataTTL, time.Hour)),
		settings.New("result-cache", "IMAGED_RESULT_CACHE", "on: synchronous pipelines over stored images are answered from the processed-output cache when the same content went through the same pipeline (kept as IMAGED_RETENTION_RESULTS says); off: every request runs its pipeline", settings.String(&c.ResultCache, "on")),
		settings.New("breaker-failures", "IMAGED_BREAKER_FAILURES", "consecutive failures that open the database, storage and cache breakers", settings.Int(&c.BreakerFailures, 5)),
		settings.New("breaker-recovery", "IMAGED_BREAKER_RECOVERY", "how long an open breaker waits before a trial call", settings.Duration(&c.BreakerRecovery, 60*time.Second)),
		settings.New("breaker-upload-failures", "IMAGED_BREAKER_UPLOAD_FAILURES", "consecutive failures that open the storage upload breaker", settings.Int(&c.UploadFailures, 3)),
		settings.New("breaker-upload-recovery", "IMAGED_BREAKER_UPLOAD_RECOVERY", "how long the open upload breaker waits before a trial call", settings.Duration(&c.UploadRecovery, 30*time.Second)),
		settings.New("store-retries", "IMAGED_STORE_RETRIES", "attempts of a database or storage call that fails transiently", settings.Int(&c.StoreRetries, 3)),
		settings.New("store-retry-wait", "IMAGED_STORE_RETRY_WAIT", "first wait between those attempts; doubles, with jitter", settings.Duration(&c.StoreRetryWait, time.Second)),
		settings.New("models-dir", "IMAGED_MODELS_DIR", "ONNX Runtime library and model files (`make models` fills it)", settings.String(&c.ModelsDir, onnx.DefaultModelsDir())),
		settings.New("onnx-sessions", "IMAGED_ONNX_SESSIONS", "ONNX sessions per model (each one thread)", settings.Int(&c.ONNXSessions, 2)),
		settings.New("tesseract-pool", "IMAGED_TESSERACT_POOL", "initialised Tesseract clients per language set", settings.Int(&c.TesseractPool, 2)),
		settings.New("detect-model", "IMAGED_DETECT_MODEL", "detection model of requests that name none", settings.String(&c.DetectModel, "ssd_mobilenet_v2_coco")),
		settings.New("detect-models", "IMAGED_DETECT_MODELS", "YOLO (Ultralytics) ONNX models users bring: name=path,… (paths relative to the models dir)", settings.String(&c.DetectModels, "")),
		settings.New("log-level", "IMAGED_LOG_LEVEL", "debug, info, warn or error", settings.String(&c.LogLevel, "info")),
		settings.New("log-format", "IMAGED_LOG_FORMAT", "json or text", settings.String(&c.LogFormat, "json")),
	}, append(append(accessSettings(c), brokerSettings(c)...), tracingSettings(c)...)...)
}

// Parse reads the environment, then args. Errors name the setting at fault.
func Parse(name string, args []string, getenv func(string) string) (*Config, error) {
	c, rest, err := ParseWith(name, args, getenv, nil)
	if err == nil && len(rest) > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	return c, err
}

// ParseWith is Parse for commands with flags (bound by extra) and arguments of
// their own; it returns the arguments after the flags.
func ParseWith(name string, args []string, getenv func(string) string, extra func(*flag.FlagSet)) (*Config, []string, error) {
	c := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The error comes back to the caller; the help only on -h, whole, as a *Help.
	fs.SetOutput(io.Discard)
	list := allSettings(c)
	settings.Bind(fs, list)
	if extra != nil {
		extra(fs)
	}
	if err := settings.FromEnv(fs, list, getenv); err != nil {
		return nil, nil, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, &Help{Text: helpText(name, fs)}
		}
		return nil, nil, fmt.Errorf("%w (see imaged %s -h)", err, name)
	}
	return c, fs.Args(), c.validate()
}

// Help is what Parse returns for -h or --help: the command's help, for stdout. It is no failure;
// it wraps flag.ErrHelp.
type Help struct{ Text string }

func (h *Help) Error() string { return "help requested" }
func (h *Help) Unwrap() error { return flag.ErrHelp }

// helpText lists the flags of fs with their types and defaults. It does not let the flag package
// read a back-quoted word of a help text as the flag's argument name, as PrintDefaults does.
func helpText(name string, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: imaged %s [flags]\n\nEach flag can also be set by the IMAGED_* variable in brackets; the flag wins.\n\n", name)
	fs.VisitAll(func(f *flag.Flag) {
		plain := *f
		plain.Usage = strings.ReplaceAll(f.Usage, "`", "'")
		typ, usage := flag.UnquoteUsage(&plain)
		fmt.Fprintf(&b, "  -%s", f.Name)
		if typ != "" {
			fmt.Fprintf(&b, " %s", typ)
		}
		fmt.Fprintf(&b, "\n    \t%s", usage)
		switch {
		case f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0" || f.DefValue == "0s":
		case typ == "string":
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	return b.String()
}

func (c *Config) validate() error {
	if err := settings.FirstFailure([]settings.Check{
		settings.Rule(c.Workers >= 0, "IMAGED_WORKERS", "must be 0 or more"),
		settings.Rule(c.TaskDeadline > 0, "IMAGED_TASK_DEADLINE", "must be positive"),
		settings.Rule(c.OutageDeadline > 0, "IMAGED_TASK_OUTAGE_DEADLINE", "must be positive"),
		settings.Rule(knownTypes(c.Types()), "IMAGED_WORKER_TYPES", "must list task types among "+strings.Join(imaged.TaskTypes, ", ")),
		settings.Rule(c.TaskLease >= time.Second && c.TaskLease <= time.Hour, "IMAGED_TASK_LEASE", "must be between 1s and 1h"),
		settings.Rule(c.ShutdownGrace >= 0, "IMAGED_SHUTDOWN_GRACE", "must not be negative"),
		settings.Rule(c.MaxAttempts >= 1 && c.MaxAttempts <= 10, "IMAGED_MAX_ATTEMPTS", "must be between 1 and 10"),
		settings.Rule(c.RetryBackoff > 0, "IMAGED_RETRY_BACKOFF", "must be positive"),
		settings.Rule(c.MaxUploadBytes > 0, "IMAGED_MAX_UPLOAD_BYTES", "must be positive"),
		settings.Rule(c.MaxWidth > 0 && c.MaxWidth <= 100000, "IMAGED_MAX_WIDTH", "must be between 1 and 100000"),
		settings.Rule(c.MaxHeight > 0 && c.MaxHeight <= 100000, "IMAGED_MAX_HEIGHT", "must be between 1 and 100000"),
		settings.Rule(c.MaxFrames >= 1 && c.MaxFrames <= 10000, "IMAGED_MAX_FRAMES", "must be between 1 and 10000"),
		settings.Rule(c.MaxPixels >= 1, "IMAGED_MAX_PIXELS", "must be positive"),
		settings.Rule(c.MaxCost >= 0, "IMAGED_MAX_COST", "must be 0 (no limit) or a positive number of cost units"),
		settings.Rule(c.MaxInflight > 0, "IMAGED_MAX_INFLIGHT", "must be positive"),
		settings.Rule(c.MaxOutputBytes > 0, "IMAGED_MAX_OUTPUT_BYTES", "must be positive"),
		settings.Rule(c.MaxWaiting >= 0, "IMAGED_MAX_WAITING", "must not be negative"),
		settings.Rule(c.MemoryBudget >= -1, "IMAGED_MEMORY_BUDGET", "must be -1 (unbounded), 0 (default) or a number of MiB"),
		settings.Rule(c.VipsConcurrency >= 1 && c.VipsConcurrency <= 64, "IMAGED_VIPS_CONCURRENCY", "must be between 1 and 64"),
		settings.Rule(c.PollInterval >= 10*time.Millisecond, "IMAGED_POLL_INTERVAL", "must be at least 10ms"),
		settings.Rule(c.URLExpiry >= time.Second && c.URLExpiry <= 7*24*time.Hour, "IMAGED_URL_EXPIRY", "must be between 1s and 168h"),
		settings.Rule(settings.OneOf(c.LogLevel, "debug", "info", "warn", "error"), "IMAGED_LOG_LEVEL", "must be debug, info, warn or error"),
		settings.Rule(settings.OneOf(c.LogFormat, "json", "text"), "IMAGED_LOG_FORMAT", "must be json or text"),
		settings.Rule(c.DataDir != "", "IMAGED_DATA_DIR", "must not be empty"),
		settings.Rule(c.BreakerFailures >= 1 && c.BreakerFailures <= 1000, "IMAGED_BREAKER_FAILURES", "must be between 1 and 1000"),
		settings.Rule(c.UploadFailures >= 1 && c.UploadFailures <= 1000, "IMAGED_BREAKER_UPLOAD_FAILURES", "must be between 1 and 1000"),
		settings.Rule(c.BreakerRecovery >= 100*time.Millisecond, "IMAGED_BREAKER_RECOVERY", "must be at least 100ms"),
		settings.Rule(c.UploadRecovery >= 100*time.Millisecond, "IMAGED_BREAKER_UPLOAD_RECOVERY", "must be at least 100ms"),
		settings.Rule(c.StoreRetries >= 1 && c.StoreRetries <= 10, "IMAGED_STORE_RETRIES", "must be between 1 and 10"),
		settings.Rule(c.StoreRetryWait > 0, "IMAGED_STORE_RETRY_WAIT", "must be positive"),
		settings.Rule(c.ResultTTL >= time.Second, "IMAGED_CACHE_RESULT_TTL", "must be at least 1s"),
		settings.Rule(c.MetadataTTL >= time.Second, "IMAGED_CACHE_METADATA_TTL", "must be at least 1s"),
		settings.Rule(settings.OneOf(c.ResultCache, "on", "off"), "IMAGED_RESULT_CACHE", "must be on or off"),
		settings.Rule(c.ONNXSessions >= 1 && c.ONNXSessions <= 64, "IMAGED_ONNX_SESSIONS", "must be between 1 and 64"),
		settings.Rule(c.TesseractPool >= 1 && c.TesseractPool <= 64, "IMAGED_TESSERACT_POOL", "must be between 1 and 64"),
	}); err != nil {
		return err
	}
	if err := c.validateBrokers(); err != nil {
		return err
	}
	if err := c.validateTracing(); err != nil {
		return err
	}
	return c.validateAccess()
}

// Types are the task types this process's workers run (IMAGED_WORKER_TYPES); nil for all.
func (c *Config) Types() []string { return settings.List(c.WorkerTypes) }

func knownTypes(types []string) bool {
	for _, t := range types {
		if !slices.Contains(imaged.TaskTypes, t) {
			return false
		}
	}
	return true
}

// Database is IMAGED_DATABASE_URL, or the embedded database in the data directory.
func (c *Config) Database() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return "sqlite://" + filepath.Join(c.DataDir, "imaged.db")
}

// Limits are the limits of inputs and pipelines. IMAGED_MAX_COST=0 (none) is a negative
// MaxCost, which the processor reads as no limit.
func (c *Config) Limits() imaged.Limits {
	l := imaged.Limits{MaxBytes: c.MaxUploadBytes, MaxWidth: c.MaxWidth, MaxHeight: c.MaxHeight, MaxPixels: c.MaxPixels,
		MaxCost: float64(c.MaxCost)}
	if c.MaxCost == 0 {
		l.MaxCost = -1
	}
	return l
}
