package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
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
	TaskDeadline    time.Duration
	TaskLease       time.Duration
	ShutdownGrace   time.Duration
	MaxAttempts     int
	RetryBackoff    time.Duration
	MaxUploadBytes  int64
	MaxWidth        int
	MaxHeight       int
	MaxFrames       int
	MaxInflight     int
	MaxWaiting      int
	VipsConcurrency int
	MemoryBudget    int
	PollInterval    time.Duration
	LogLevel        string
	LogFormat       string
	NoMigrate       bool
	RedisURL        string
	ResultTTL       time.Duration
	MetadataTTL     time.Duration
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

// setting describes one configuration entry; the README's table lists the same entries.
type setting struct {
	flag, env, help string
	bind            func(fs *flag.FlagSet, name, help string)
}

func stringFlag(p *string, def string) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.StringVar(p, n, def, h) }
}

func intFlag(p *int, def int) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.IntVar(p, n, def, h) }
}

func int64Flag(p *int64, def int64) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.Int64Var(p, n, def, h) }
}

func floatFlag(p *float64, def float64) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.Float64Var(p, n, def, h) }
}

func boolFlag(p *bool, def bool) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.BoolVar(p, n, def, h) }
}

func durationFlag(p *time.Duration, def time.Duration) func(*flag.FlagSet, string, string) {
	return func(fs *flag.FlagSet, n, h string) { fs.DurationVar(p, n, def, h) }
}

func settings(c *Config) []setting {
	return append([]setting{
		{"addr", "IMAGED_ADDR", "listen address of the API", stringFlag(&c.Addr, ":8000")},
		{"public-url", "IMAGED_PUBLIC_URL", "base URL clients reach the API at (for signed local-disk URLs); default from addr", stringFlag(&c.PublicURL, "")},
		{"data-dir", "IMAGED_DATA_DIR", "directory of the embedded database and blobs", stringFlag(&c.DataDir, "./data")},
		{"database-url", "IMAGED_DATABASE_URL", "task store: sqlite://PATH (default DATA_DIR/imaged.db)", stringFlag(&c.DatabaseURL, "")},
		{"queue-url", "IMAGED_QUEUE_URL", "queue: db:// (default: the database is the queue), amqp://user:pass@host:5672/vhost?exchange=image_processing&prefix=imaged. or kafka://host:9092?topic_prefix=imaged&group=imaged-workers", stringFlag(&c.QueueURL, "")},
		{"storage-url", "IMAGED_STORAGE_URL", "blob store: file://DIR (default DATA_DIR/blobs) or s3://BUCKET?endpoint=…", stringFlag(&c.StorageURL, "")},
		{"url-secret", "IMAGED_URL_SECRET", "key signing local-disk blob URLs; default: generated once into DATA_DIR", stringFlag(&c.URLSecret, "")},
		{"url-expiry", "IMAGED_URL_EXPIRY", "lifetime of presigned/signed blob URLs", durationFlag(&c.URLExpiry, time.Hour)},
		{"workers", "IMAGED_WORKERS", "tasks run at once by this process; 0 = API only", intFlag(&c.Workers, runtime.NumCPU())},
		{"task-deadline", "IMAGED_TASK_DEADLINE", "longest run of one task attempt", durationFlag(&c.TaskDeadline, 5*time.Minute)},
		{"task-lease", "IMAGED_TASK_LEASE", "how long a running task stays its worker's without a heartbeat (renewed every third of it); a dead worker's tasks run again after about this long", durationFlag(&c.TaskLease, worker.DefaultLease)},
		{"shutdown-grace", "IMAGED_SHUTDOWN_GRACE", "time requests and running tasks get to finish on SIGTERM", durationFlag(&c.ShutdownGrace, 30*time.Second)},
		{"max-attempts", "IMAGED_MAX_ATTEMPTS", "attempts per task before it fails (transient errors only are retried)", intFlag(&c.MaxAttempts, 3)},
		{"retry-backoff", "IMAGED_RETRY_BACKOFF", "first retry delay; doubles each attempt, with jitter", durationFlag(&c.RetryBackoff, time.Second)},
		{"max-upload-bytes", "IMAGED_MAX_UPLOAD_BYTES", "largest image accepted, in bytes", int64Flag(&c.MaxUploadBytes, imaged.DefaultLimits.MaxBytes)},
		{"max-width", "IMAGED_MAX_WIDTH", "widest image accepted, in pixels (read from the header)", intFlag(&c.MaxWidth, imaged.DefaultLimits.MaxWidth)},
		{"max-height", "IMAGED_MAX_HEIGHT", "tallest image accepted, in pixels (read from the header)", intFlag(&c.MaxHeight, imaged.DefaultLimits.MaxHeight)},
		{"max-frames", "IMAGED_MAX_FRAMES", "most frames of an animated GIF or WebP a pipeline with the frames op loads", intFlag(&c.MaxFrames, 100)},
		{"max-inflight", "IMAGED_MAX_INFLIGHT", "synchronous pipelines at once; default 2×CPU", intFlag(&c.MaxInflight, 2*runtime.NumCPU())},
		{"max-waiting", "IMAGED_MAX_WAITING", "synchronous requests queued for a slot before 503; default 8×CPU", intFlag(&c.MaxWaiting, 8*runtime.NumCPU())},
		{"vips-concurrency", "IMAGED_VIPS_CONCURRENCY", "libvips threads per image", intFlag(&c.VipsConcurrency, 1)},
		{"memory-budget", "IMAGED_MEMORY_BUDGET", "MiB the pipelines running at once may need for decoding; 0 = 64 per CPU, -1 = unbounded", intFlag(&c.MemoryBudget, 0)},
		{"poll-interval", "IMAGED_POLL_INTERVAL", "how often the database queue looks for tasks other processes queued", durationFlag(&c.PollInterval, 500*time.Millisecond)},
		{"no-migrate", "IMAGED_NO_MIGRATE", "do not apply database migrations at start-up (run `imaged migrate up` instead)", boolFlag(&c.NoMigrate, false)},
		{"redis-url", "IMAGED_REDIS_URL", "Redis for the result and metadata caches: redis://host:6379/0 (unset = no cache)", stringFlag(&c.RedisURL, "")},
		{"cache-result-ttl", "IMAGED_CACHE_RESULT_TTL", "how long a finished task stays cached", durationFlag(&c.ResultTTL, 5*time.Minute)},
		{"cache-metadata-ttl", "IMAGED_CACHE_METADATA_TTL", "how long image metadata stays cached", durationFlag(&c.MetadataTTL, time.Hour)},
		{"breaker-failures", "IMAGED_BREAKER_FAILURES", "consecutive failures that open the database, storage and cache breakers", intFlag(&c.BreakerFailures, 5)},
		{"breaker-recovery", "IMAGED_BREAKER_RECOVERY", "how long an open breaker waits before a trial call", durationFlag(&c.BreakerRecovery, 60*time.Second)},
		{"breaker-upload-failures", "IMAGED_BREAKER_UPLOAD_FAILURES", "consecutive failures that open the storage upload breaker", intFlag(&c.UploadFailures, 3)},
		{"breaker-upload-recovery", "IMAGED_BREAKER_UPLOAD_RECOVERY", "how long the open upload breaker waits before a trial call", durationFlag(&c.UploadRecovery, 30*time.Second)},
		{"store-retries", "IMAGED_STORE_RETRIES", "attempts of a database or storage call that fails transiently", intFlag(&c.StoreRetries, 3)},
		{"store-retry-wait", "IMAGED_STORE_RETRY_WAIT", "first wait between those attempts; doubles, with jitter", durationFlag(&c.StoreRetryWait, time.Second)},
		{"models-dir", "IMAGED_MODELS_DIR", "ONNX Runtime library and model files (`make models` fills it)", stringFlag(&c.ModelsDir, onnx.DefaultModelsDir())},
		{"onnx-sessions", "IMAGED_ONNX_SESSIONS", "ONNX sessions per model (each one thread)", intFlag(&c.ONNXSessions, 2)},
		{"tesseract-pool", "IMAGED_TESSERACT_POOL", "initialised Tesseract clients per language set", intFlag(&c.TesseractPool, 2)},
		{"detect-model", "IMAGED_DETECT_MODEL", "detection model of requests that name none", stringFlag(&c.DetectModel, "ssd_mobilenet_v2_coco")},
		{"detect-models", "IMAGED_DETECT_MODELS", "YOLO (Ultralytics) ONNX models users bring: name=path,… (paths relative to the models dir)", stringFlag(&c.DetectModels, "")},
		{"log-level", "IMAGED_LOG_LEVEL", "debug, info, warn or error", stringFlag(&c.LogLevel, "info")},
		{"log-format", "IMAGED_LOG_FORMAT", "json or text", stringFlag(&c.LogFormat, "json")},
	}, append(append(accessSettings(c), brokerSettings(c)...), tracingSettings(c)...)...)
}

// parseConfig reads the environment, then args. Errors name the setting at fault.
func parseConfig(name string, args []string, getenv func(string) string) (*Config, error) {
	c, rest, err := parseConfigWith(name, args, getenv, nil)
	if err == nil && len(rest) > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	return c, err
}

// parseConfigWith is parseConfig for commands with flags (bound by extra) and arguments of
// their own; it returns the arguments after the flags.
func parseConfigWith(name string, args []string, getenv func(string) string, extra func(*flag.FlagSet)) (*Config, []string, error) {
	c := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	list := settings(c)
	for _, s := range list {
		s.bind(fs, s.flag, s.help+" ["+s.env+"]")
	}
	if extra != nil {
		extra(fs)
	}
	for _, s := range list {
		if v, ok := lookup(getenv, s.env); ok {
			if err := fs.Set(s.flag, v); err != nil {
				return nil, nil, fmt.Errorf("setting %s: invalid value %q: %v", s.env, v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return c, fs.Args(), c.validate()
}

func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	return v, v != ""
}

func (c *Config) validate() error {
	if err := firstFailure([]check{
		{c.Workers >= 0, "IMAGED_WORKERS", "must be 0 or more"},
		{c.TaskDeadline > 0, "IMAGED_TASK_DEADLINE", "must be positive"},
		{c.TaskLease >= time.Second && c.TaskLease <= time.Hour, "IMAGED_TASK_LEASE", "must be between 1s and 1h"},
		{c.ShutdownGrace >= 0, "IMAGED_SHUTDOWN_GRACE", "must not be negative"},
		{c.MaxAttempts >= 1 && c.MaxAttempts <= 10, "IMAGED_MAX_ATTEMPTS", "must be between 1 and 10"},
		{c.RetryBackoff > 0, "IMAGED_RETRY_BACKOFF", "must be positive"},
		{c.MaxUploadBytes > 0, "IMAGED_MAX_UPLOAD_BYTES", "must be positive"},
		{c.MaxWidth > 0 && c.MaxWidth <= 100000, "IMAGED_MAX_WIDTH", "must be between 1 and 100000"},
		{c.MaxHeight > 0 && c.MaxHeight <= 100000, "IMAGED_MAX_HEIGHT", "must be between 1 and 100000"},
		{c.MaxFrames >= 1 && c.MaxFrames <= 10000, "IMAGED_MAX_FRAMES", "must be between 1 and 10000"},
		{c.MaxInflight > 0, "IMAGED_MAX_INFLIGHT", "must be positive"},
		{c.MaxWaiting >= 0, "IMAGED_MAX_WAITING", "must not be negative"},
		{c.MemoryBudget >= -1, "IMAGED_MEMORY_BUDGET", "must be -1 (unbounded), 0 (default) or a number of MiB"},
		{c.VipsConcurrency >= 1 && c.VipsConcurrency <= 64, "IMAGED_VIPS_CONCURRENCY", "must be between 1 and 64"},
		{c.PollInterval >= 10*time.Millisecond, "IMAGED_POLL_INTERVAL", "must be at least 10ms"},
		{c.URLExpiry >= time.Second && c.URLExpiry <= 7*24*time.Hour, "IMAGED_URL_EXPIRY", "must be between 1s and 168h"},
		{oneOf(c.LogLevel, "debug", "info", "warn", "error"), "IMAGED_LOG_LEVEL", "must be debug, info, warn or error"},
		{oneOf(c.LogFormat, "json", "text"), "IMAGED_LOG_FORMAT", "must be json or text"},
		{c.DataDir != "", "IMAGED_DATA_DIR", "must not be empty"},
		{c.BreakerFailures >= 1 && c.BreakerFailures <= 1000, "IMAGED_BREAKER_FAILURES", "must be between 1 and 1000"},
		{c.UploadFailures >= 1 && c.UploadFailures <= 1000, "IMAGED_BREAKER_UPLOAD_FAILURES", "must be between 1 and 1000"},
		{c.BreakerRecovery >= 100*time.Millisecond, "IMAGED_BREAKER_RECOVERY", "must be at least 100ms"},
		{c.UploadRecovery >= 100*time.Millisecond, "IMAGED_BREAKER_UPLOAD_RECOVERY", "must be at least 100ms"},
		{c.StoreRetries >= 1 && c.StoreRetries <= 10, "IMAGED_STORE_RETRIES", "must be between 1 and 10"},
		{c.StoreRetryWait > 0, "IMAGED_STORE_RETRY_WAIT", "must be positive"},
		{c.ResultTTL >= time.Second, "IMAGED_CACHE_RESULT_TTL", "must be at least 1s"},
		{c.MetadataTTL >= time.Second, "IMAGED_CACHE_METADATA_TTL", "must be at least 1s"},
		{c.ONNXSessions >= 1 && c.ONNXSessions <= 64, "IMAGED_ONNX_SESSIONS", "must be between 1 and 64"},
		{c.TesseractPool >= 1 && c.TesseractPool <= 64, "IMAGED_TESSERACT_POOL", "must be between 1 and 64"},
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

// check is one rule of the settings: when ok is false, setting is at fault, as msg says.
type check struct {
	ok      bool
	setting string
	msg     string
}

// firstFailure returns the error of the first check that fails, naming its setting.
func firstFailure(checks []check) error {
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("setting %s: %s", ch.setting, ch.msg)
		}
	}
	return nil
}

func oneOf(v string, opts ...string) bool {
	for _, o := range opts {
		if v == o {
			return true
		}
	}
	return false
}

// databaseURL is IMAGED_DATABASE_URL, or the embedded database in the data directory.
func (c *Config) databaseURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return "sqlite://" + filepath.Join(c.DataDir, "imaged.db")
}

func (c *Config) limits() imaged.Limits {
	return imaged.Limits{MaxBytes: c.MaxUploadBytes, MaxWidth: c.MaxWidth, MaxHeight: c.MaxHeight}
}
