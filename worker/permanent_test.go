package worker

import (
	"errors"
	"testing"

	"github.com/imaged/imaged"
)

// Errors of the input, the pipeline or the installation fail a task at once; an unavailable
// dependency or an unknown error is worth another attempt.
func TestPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{imaged.Errorf(imaged.EInvalid, "bad"), true},
		{imaged.Errorf(imaged.EUnsupported, "format"), true},
		{imaged.Errorf(imaged.ENotInstalled, "the model x.onnx is missing"), true},
		{imaged.Errorf(imaged.EUnavailable, "storage down"), false},
		{errors.New("something else"), false},
	} {
		if got := Permanent(tc.err); got != tc.want {
			t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
