package s3

import (
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		raw  string
		want Config
		err  string // part of the error message; "" means success
	}{
		{raw: "s3://images", want: Config{Bucket: "images"}},
		{raw: "s3://images/", want: Config{Bucket: "images"}},
		{raw: "s3://my.bucket-1/tenant/a/", want: Config{Bucket: "my.bucket-1", Prefix: "tenant/a"}},
		{
			raw: "s3://imaged/blobs?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&create_bucket=1" +
				"&access_key=AKIA1&secret_key=abc%2Fdef%2Bghi&public_endpoint=https://cdn.example.com" +
				"&presign_expiry=15m&part_size=10485760&multipart_threshold=33554432",
			want: Config{
				Bucket: "imaged", Prefix: "blobs", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1",
				PathStyle: true, CreateBucket: true, AccessKey: "AKIA1", SecretKey: "abc/def+ghi",
				PublicEndpoint: "https://cdn.example.com", PresignExpiry: 15 * time.Minute,
				PartSize: 10 << 20, MultipartThreshold: 32 << 20,
			},
		},
		{raw: "s3://b12?presign_expiry=600", want: Config{Bucket: "b12", PresignExpiry: 10 * time.Minute}},
		{raw: "s3://b12?access_key=AK&secret_key=a+b/c", want: Config{Bucket: "b12", AccessKey: "AK", SecretKey: "a+b/c"}},
		{raw: "s3://b12?path_style=false", want: Config{Bucket: "b12"}},

		{raw: "file://./data", err: "scheme"},
		{raw: "s3://", err: "no bucket"},
		{raw: "s3:///prefix", err: "no bucket"},
		{raw: "s3://UPPER", err: "not a valid bucket name"},
		{raw: "s3://ab", err: "not a valid bucket name"},
		{raw: "s3://a_b_c", err: "not a valid bucket name"},
		{raw: "s3://key:secret@bucket", err: "access_key and secret_key parameters"},
		{raw: "s3://bucket/a//b", err: "empty segment"},
		{raw: "s3://bucket?endpont=http://x", err: `"endpont" is unknown`},
		{raw: "s3://bucket?region=a&region=b", err: `"region" is given 2 times`},
		{raw: "s3://bucket?endpoint=127.0.0.1:9000", err: "endpoint"},
		{raw: "s3://bucket?endpoint=ftp://host", err: "not an http(s) URL"},
		{raw: "s3://bucket?public_endpoint=nohost", err: "public_endpoint"},
		{raw: "s3://bucket?path_style=yes", err: "path_style"},
		{raw: "s3://bucket?create_bucket=maybe", err: "create_bucket"},
		{raw: "s3://bucket?access_key=AK", err: "access_key and secret_key together"},
		{raw: "s3://bucket?secret_key=SK", err: "access_key and secret_key together"},
		{raw: "s3://bucket?presign_expiry=soon", err: "presign_expiry"},
		{raw: "s3://bucket?presign_expiry=200h", err: "presign expiry"},
		{raw: "s3://bucket?part_size=-1", err: "part_size"},
		{raw: "s3://bucket?part_size=1024", err: "part size 1024"},
		{raw: "s3://bucket?multipart_threshold=lots", err: "multipart_threshold"},
		{raw: "s3://bucket?secret_key=%zz", err: "query is malformed"},
		{raw: "s3://bu cket", err: "malformed"},
	}
	for _, c := range cases {
		got, err := ParseURL(c.raw)
		if c.err != "" {
			if err == nil {
				t.Errorf("ParseURL(%q) = %+v, want an error containing %q", c.raw, got, c.err)
				continue
			}
			if !imaged.IsCode(err, imaged.EInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%q): %v, want %s containing %q", c.raw, err, imaged.EInvalid, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.raw, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", c.raw, got, c.want)
		}
	}
}

func TestParseURLErrorsNeverShowTheSecret(t *testing.T) {
	for _, raw := range []string{
		"s3://bucket?secret_key=TOPSECRET&access_key=AK&bogus=1",
		"s3://bucket?secret_key=TOPSECRET&access_key=AK&part_size=x",
		"s3://bu cket?secret_key=TOPSECRET&access_key=AK",
		"s3://bucket?secret_key=TOPSECRET%zz&access_key=AK",
	} {
		_, err := ParseURL(raw)
		if err == nil {
			t.Fatalf("ParseURL(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("ParseURL error shows the secret: %v", err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Bucket: "b12"}.withDefaults()
	if c.PresignExpiry != time.Hour || c.PartSize != 8<<20 || c.MultipartThreshold != 16<<20 {
		t.Fatalf("defaults = %+v", c)
	}
}
