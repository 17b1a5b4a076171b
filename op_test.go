package imaged_test

import (
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

// The ops' own packages register the real traits and test them (vips: crop and resize with
// gravity object:<class>; detect; ocr); here, how the traits of a pipeline's ops combine.
func init() {
	imaged.RegisterOp(imaged.OpSpec{Name: "test-reads", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeOCR})
	imaged.RegisterOp(imaged.OpSpec{Name: "test-finds", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeDetect})
	imaged.RegisterOp(imaged.OpSpec{Name: "test-draws", TaskType: imaged.TaskTypeDetect})
	imaged.RegisterOp(imaged.OpSpec{Name: "test-places", TaskTypeFor: func(o imaged.Op) string {
		if strings.Contains(string(o.Args), "object:") {
			return imaged.TaskTypeDetect
		}
		return ""
	}})
	imaged.RegisterOp(imaged.OpSpec{Name: "test-setting", Kind: imaged.OpSetting})
}

func TestTaskTypeOf(t *testing.T) {
	for ops, want := range map[string]string{
		`[{"op":"test-places","gravity":"centre"},{"op":"unknown"}]`: imaged.TaskTypeTransform,
		`[{"op":"test-finds"}]`:                                           imaged.TaskTypeDetect,
		`[{"op":"test-draws"}]`:                                           imaged.TaskTypeDetect,
		`[{"op":"test-places","gravity":"object:cat"}]`:                   imaged.TaskTypeDetect,
		`[{"op":"test-finds"},{"op":"test-reads"}]`:                       imaged.TaskTypeOCR,
		`[{"op":"test-reads"},{"op":"test-finds"}]`:                       imaged.TaskTypeOCR,
		`[{"op":"test-places","gravity":"object:a"},{"op":"test-reads"}]`: imaged.TaskTypeOCR,
	} {
		parsed, err := imaged.ParseOps([]byte(ops))
		if err != nil {
			t.Fatal(err)
		}
		if got := imaged.TaskTypeOf(parsed); got != want {
			t.Errorf("%s: %s, want %s", ops, got, want)
		}
	}
}

func TestHasAnalysis(t *testing.T) {
	for ops, want := range map[string]bool{
		`[{"op":"test-setting"},{"op":"test-draws"},{"op":"unknown"}]`: false,
		`[{"op":"test-draws"},{"op":"test-finds"}]`:                    true,
	} {
		parsed, err := imaged.ParseOps([]byte(ops))
		if err != nil {
			t.Fatal(err)
		}
		if got := imaged.HasAnalysis(parsed); got != want {
			t.Errorf("%s: %v, want %v", ops, got, want)
		}
	}
}

func TestRegisterOpTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an op registered twice")
		}
	}()
	imaged.RegisterOp(imaged.OpSpec{Name: "test-reads"})
}

func TestRegisteredOpsAreSorted(t *testing.T) {
	ops := imaged.RegisteredOps()
	for i := 1; i < len(ops); i++ {
		if ops[i-1].Name >= ops[i].Name {
			t.Fatalf("%s listed before %s", ops[i-1].Name, ops[i].Name)
		}
	}
	if s, ok := imaged.LookupOp("test-finds"); !ok || s.Kind != imaged.OpAnalysis {
		t.Fatalf("LookupOp = %+v, %v", s, ok)
	}
}
