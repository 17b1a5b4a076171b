package imaged_test

import (
	"testing"

	"github.com/imaged/imaged"
)

func TestTaskTypeOf(t *testing.T) {
	for ops, want := range map[string]string{
		`[{"op":"resize","width":10},{"op":"blur"}]`:               imaged.TaskTypeTransform,
		`[{"op":"crop","width":10,"height":10,"gravity":"smart"}]`: imaged.TaskTypeTransform,
		`[{"op":"detect"}]`:   imaged.TaskTypeDetect,
		`[{"op":"annotate"}]`: imaged.TaskTypeDetect,
		`[{"op":"crop","width":10,"height":10,"gravity":"object:cat"}]`:                 imaged.TaskTypeDetect,
		`[{"op":"resize","width":10,"height":10,"fit":"cover","gravity":"Object:dog"}]`: imaged.TaskTypeDetect,
		`[{"op":"detect"},{"op":"ocr"}]`:                                                imaged.TaskTypeOCR,
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
