package imaged_test

import (
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func TestWithDefaults(t *testing.T) {
	type config struct {
		Timeout  time.Duration
		Count    int
		Ratio    float64
		Name     string
		Hook     func()
		Redirect int // negative means none: not in the defaults
		hidden   int
	}
	def := config{Timeout: time.Second, Count: 3, Ratio: 0.5, Name: "imaged", Hook: func() {}, hidden: 7}

	got := imaged.WithDefaults(config{Timeout: -time.Second, Redirect: -1}, def)
	if got.Timeout != time.Second || got.Count != 3 || got.Ratio != 0.5 || got.Name != "imaged" || got.Hook == nil {
		t.Errorf("unset fields not defaulted: %+v", got)
	}
	if got.Redirect != -1 || got.hidden != 0 {
		t.Errorf("fields outside the defaults changed: %+v", got)
	}

	set := config{Timeout: time.Minute, Count: 9, Ratio: 2, Name: "mine"}
	if got := imaged.WithDefaults(set, def); got.Timeout != time.Minute || got.Count != 9 || got.Ratio != 2 || got.Name != "mine" {
		t.Errorf("set fields replaced: %+v", got)
	}
}

func TestWithDefaultsForZero(t *testing.T) {
	type config struct {
		Timeout time.Duration
		Size    int64
		Name    string
	}
	def := config{Timeout: time.Second, Size: 5, Name: "imaged"}
	got := imaged.WithDefaultsForZero(config{Timeout: -time.Second}, def)
	if got.Timeout != -time.Second {
		t.Errorf("a negative value was replaced: %v", got.Timeout)
	}
	if got.Size != 5 || got.Name != "imaged" {
		t.Errorf("zero fields not defaulted: %+v", got)
	}
}
