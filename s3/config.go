package s3

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// Defaults for the zero values of Config.
const (
	DefaultRegion             = "us-east-1"
	DefaultPresignExpiry      = time.Hour
	DefaultPartSize           = 8 << 20
	DefaultMultipartThreshold = 16 << 20

	// S3's limits on multipart uploads and presigned URLs.
	minPartSize      = 5 << 20
	maxPartSize      = 5 << 30
	maxParts         = 10000
	maxPresignExpiry = 7 * 24 * time.Hour
)

// Config says which bucket to use and how to reach it.
type Config struct {
	Bucket string
	// Prefix is prepended (with a "/") to every key, so several deployments can share a bucket.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server (http://127.0.0.1:9000); empty
	// means AWS itself.
	Endpoint string
	// PublicEndpoint, when set, is the base URL presigned URLs are made for: the address
	// clients reach the server by, where it differs from Endpoint (a private network name).
	PublicEndpoint string
	// Region defaults to the AWS environment's, then DefaultRegion.
	Region string
	// PathStyle addresses buckets as endpoint/bucket rather than bucket.endpoint, which most
	// S3-compatible servers need.
	PathStyle bool
	// AccessKey and SecretKey are static credentials; when empty the usual AWS sources
	// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, shared files, instance roles) apply.
	AccessKey string
	SecretKey string
	// CreateBucket makes New create the bucket when it does not exist.
	CreateBucket bool
	// PresignExpiry is how long URL's URLs last when the caller asks for no particular time.
	PresignExpiry time.Duration
	// PartSize is the size of each part of a multipart upload (at least 5 MiB).
	PartSize int64
	// MultipartThreshold is the size above which Put uploads in parts.
	MultipartThreshold int64
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL reads a storage URL:
//
//	s3://bucket/optional/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//	    &create_bucket=true&access_key=…&secret_key=…&public_endpoint=…
//	    &presign_expiry=1h&part_size=8388608&multipart_threshold=16777216
//
// Unknown parameters are errors, so a misspelt one cannot be silently ignored.
func ParseURL(raw string) (Config, error) {
	var cfg Config
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, secret key included: name only the problem.
		var msg = "not a URL"
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return cfg, invalid("storage URL is malformed: %s", msg)
	}
	if u.Scheme != "s3" {
		return cfg, invalid("storage URL scheme is %q, want s3", u.Scheme)
	}
	if u.User != nil {
		return cfg, invalid("storage URL carries credentials before the bucket; use access_key and secret_key parameters")
	}
	if u.Host == "" {
		return cfg, invalid("storage URL names no bucket (s3://BUCKET/prefix)")
	}
	if !bucketName.MatchString(u.Host) || strings.Contains(u.Host, "..") {
		return cfg, invalid("storage URL bucket %q is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens)", u.Host)
	}
	cfg.Bucket = u.Host
	cfg.Prefix = strings.Trim(u.Path, "/")
	if strings.Contains(cfg.Prefix, "//") {
		return cfg, invalid("storage URL prefix %q has an empty segment", cfg.Prefix)
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg, invalid("storage URL query is malformed")
	}
	known := []string{"endpoint", "public_endpoint", "region", "path_style", "create_bucket", "access_key",
		"secret_key", "presign_expiry", "part_size", "multipart_threshold"}
	for name, vals := range q {
		if !slices.Contains(known, name) {
			return cfg, invalid("storage URL parameter %q is unknown (known: %s)", name, strings.Join(known, ", "))
		}
		if len(vals) > 1 {
			return cfg, invalid("storage URL parameter %q is given %d times", name, len(vals))
		}
	}
	for _, name := range []string{"endpoint", "public_endpoint"} {
		if v := q.Get(name); v != "" {
			if err := checkEndpoint(v); err != nil {
				return cfg, invalid("storage URL parameter %s: %s", name, err.Message)
			}
		}
	}
	cfg.Endpoint = q.Get("endpoint")
	cfg.PublicEndpoint = q.Get("public_endpoint")
	cfg.Region = q.Get("region")
	// Query decoding turns an unescaped "+" (common in AWS secret keys) into a space, which no
	// key contains: put it back rather than fail later with a signature mismatch.
	cfg.AccessKey = strings.ReplaceAll(q.Get("access_key"), " ", "+")
	cfg.SecretKey = strings.ReplaceAll(q.Get("secret_key"), " ", "+")
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return cfg, invalid("storage URL needs access_key and secret_key together (or neither, to use the AWS environment)")
	}
	if cfg.PathStyle, err = parseBool(q, "path_style"); err != nil {
		return cfg, err
	}
	if cfg.CreateBucket, err = parseBool(q, "create_bucket"); err != nil {
		return cfg, err
	}
	if v := q.Get("presign_expiry"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			n, nerr := strconv.ParseInt(v, 10, 64)
			if nerr != nil {
				return cfg, invalid("storage URL parameter presign_expiry %q is neither a duration (1h) nor seconds", v)
			}
			d = time.Duration(n) * time.Second
		}
		cfg.PresignExpiry = d
	}
	if cfg.PartSize, err = parseSize(q, "part_size"); err != nil {
		return cfg, err
	}
	if cfg.MultipartThreshold, err = parseSize(q, "multipart_threshold"); err != nil {
		return cfg, err
	}
	if err := cfg.withDefaults().validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	c.Prefix = strings.Trim(c.Prefix, "/")
	// Negative values stay for validate to refuse.
	return imaged.WithDefaultsForZero(c, Config{
		PresignExpiry:      DefaultPresignExpiry,
		PartSize:           DefaultPartSize,
		MultipartThreshold: DefaultMultipartThreshold,
	})
}

func (c Config) validate() *imaged.Error {
	switch {
	case c.Bucket == "":
		return invalid("S3 bucket is not set")
	case c.PresignExpiry < time.Second || c.PresignExpiry > maxPresignExpiry:
		return invalid("S3 presign expiry %v is outside 1s..%v", c.PresignExpiry, maxPresignExpiry)
	case c.PartSize < minPartSize || c.PartSize > maxPartSize:
		return invalid("S3 part size %d is outside %d..%d bytes", c.PartSize, minPartSize, maxPartSize)
	case c.MultipartThreshold < 0:
		return invalid("S3 multipart threshold %d is negative", c.MultipartThreshold)
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return invalid("S3 access key and secret key go together")
	}
	for _, ep := range []string{c.Endpoint, c.PublicEndpoint} {
		if ep != "" {
			if err := checkEndpoint(ep); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkEndpoint(v string) *imaged.Error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("S3 endpoint %q is not an http(s) URL", v)
	}
	if u.RawQuery != "" || u.User != nil {
		return invalid("S3 endpoint %q must be a plain base URL", v)
	}
	return nil
}

func parseBool(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid("storage URL parameter %s %q is not true or false", name, v)
	}
	return b, nil
}

func parseSize(q url.Values, name string) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, invalid("storage URL parameter %s %q is not a positive number of bytes", name, v)
	}
	return n, nil
}

func invalid(format string, args ...any) *imaged.Error {
	return imaged.Errorf(imaged.EInvalid, format, args...)
}
