package s3

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imaged/imaged"
)

// maxListKeys is the most keys S3 returns in one ListObjectsV2 page.
const maxListKeys = 1000

// List returns up to limit objects whose key starts with prefix and sorts after after, in key
// order (S3 lists keys in bytewise order), through ListObjectsV2 pages. Keys come back without
// the store's prefix; ContentType is left empty.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]imaged.BlobInfo, error) {
	out := []imaged.BlobInfo{}
	base := ""
	if s.cfg.Prefix != "" {
		base = s.cfg.Prefix + "/"
	}
	in := &s3sdk.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(base + prefix)}
	if after != "" {
		in.StartAfter = aws.String(base + after)
	}
	for len(out) < limit {
		in.MaxKeys = aws.Int32(int32(min(limit-len(out), maxListKeys)))
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.classify(err, "listing %s", prefix)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), base)
			out = append(out, imaged.BlobInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	return out, nil
}
