package vips

import (
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

func TestValidateRefusesBadParameters(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	for _, tc := range []struct {
		ops   string
		field string // the error's field
		text  string // part of the message
	}{
		{`{"op":"resize"}`, "ops[0].width", "resize needs width"},
		{`{"op":"resize","width":0}`, "ops[0].width", "resize.width must be between 1 and 10000"},
		{`{"op":"resize","width":-5}`, "ops[0].width", "resize.width must be between 1 and 10000"},
		{`{"op":"resize","width":10001}`, "ops[0].width", "resize.width must be between 1 and 10000"},
		{`{"op":"resize","height":0}`, "ops[0].height", "resize.height must be between 1 and 10000"},
		{`{"op":"resize","width":"big"}`, "ops[0].width", "resize.width must be an integer, not a string"},
		{`{"op":"resize","width":10.5}`, "ops[0].width", "resize.width"},
		{`{"op":"resize","width":10,"fit":"squash"}`, "ops[0].fit", "resize.fit must be one of inside, outside, cover, fill, exact"},
		{`{"op":"resize","width":10,"kernel":"box"}`, "ops[0].kernel", "resize.kernel must be one of"},
		{`{"op":"resize","width":10,"gravity":"up"}`, "ops[0].gravity", "resize.gravity must be one of"},
		{`{"op":"resize","width":10,"fit":"exact","background":"#12"}`, "ops[0].background", "resize.background must be a colour"},
		{`{"op":"resize","width":10,"colour":"red"}`, "ops[0].colour", `resize has no parameter "colour"`},
		{`{"op":"crop"}`, "ops[0].width", "crop needs width and height"},
		{`{"op":"crop","x":1,"y":1,"width":10}`, "ops[0].height", "crop with x and y needs width and height"},
		{`{"op":"crop","x":-1,"y":1,"width":10,"height":10}`, "ops[0].x", "crop.x must be between 0 and 9999"},
		{`{"op":"crop","x":1,"y":1,"width":10,"height":10,"gravity":"north"}`, "ops[0].gravity", "either x and y or gravity"},
		{`{"op":"crop","width":10,"height":10,"gravity":"middle"}`, "ops[0].gravity", "crop.gravity must be one of"},
		{`{"op":"crop","width":0,"height":10}`, "ops[0].width", "crop.width must be between 1 and 10000"},
		{`{"op":"rotate"}`, "ops[0].angle", "rotate.angle is required"},
		{`{"op":"rotate","angle":"left"}`, "ops[0].angle", "rotate.angle must be a number, not a string"},
		{`{"op":"rotate","angle":90,"background":[1,2]}`, "ops[0].background", "rotate.background must be a colour"},
		{`{"op":"rotate","angle":90,"background":[1,2,300]}`, "ops[0].background", "rotate.background must be a colour"},
		{`{"op":"flip","direction":"diagonal"}`, "ops[0].direction", "flip.direction must be one of horizontal, vertical"},
		{`{"op":"flop","direction":"vertical"}`, "ops[0].direction", `flop has no parameter "direction"`},
		{`{"op":"grayscale","amount":1}`, "ops[0].amount", `grayscale has no parameter "amount"`},
		{`{"op":"blur","sigma":0}`, "ops[0].sigma", "blur.sigma must be between 0.1 and 100"},
		{`{"op":"blur","sigma":101}`, "ops[0].sigma", "blur.sigma must be between 0.1 and 100"},
		{`{"op":"blur","sigma":"lots"}`, "ops[0].sigma", "blur.sigma must be a number, not a string"},
		{`{"op":"sharpen","sigma":50}`, "ops[0].sigma", "sharpen.sigma must be between 0.1 and 10"},
		{`{"op":"sharpen","amount":-1}`, "ops[0].amount", "sharpen.amount must be between 0 and 20"},
		{`{"op":"edge","method":"laplace"}`, "ops[0].method", "edge.method must be one of canny, sobel"},
		{`{"op":"edge","intensity":0}`, "ops[0].intensity", "edge.intensity must be between 0.01 and 10"},
		{`{"op":"edge","sigma":11}`, "ops[0].sigma", "edge.sigma must be between 0 and 10"},
		{`{"op":"convert"}`, "ops[0].format", "convert.format is required"},
		{`{"op":"convert","format":"bmp"}`, "ops[0].format", "convert.format must be one of jpeg, png, webp, avif, tiff, gif, auto"},
		{`{"op":"convert","format":"jpeg","quality":0}`, "ops[0].quality", "convert.quality must be between 1 and 100"},
		{`{"op":"convert","format":"jpeg","quality":101}`, "ops[0].quality", "convert.quality must be between 1 and 100"},
		{`{"op":"convert","format":"jpeg","strip":"yes"}`, "ops[0].strip", "convert.strip must be true or false, not a string"},
		{`{"op":"info","verbose":true}`, "ops[0].verbose", `info has no parameter "verbose"`},
		{`{"op":"pad"}`, "ops[0].width", "pad needs width and/or height"},
		{`{"op":"pad","top":-1}`, "ops[0].top", "pad.top must be between 0 and 10000"},
		{`{"op":"extend","width":0}`, "ops[0].width", "extend.width must be between 1 and 10000"},
		{`{"op":"pad","top":5,"width":100}`, "ops[0].width", "not both"},
		{`{"op":"pad","width":100,"gravity":"smart"}`, "ops[0].gravity", "pad.gravity must be one of"},
		{`{"op":"brightness"}`, "ops[0].factor", "brightness.factor is required"},
		{`{"op":"brightness","factor":-1}`, "ops[0].factor", "brightness.factor must be between 0 and 10"},
		{`{"op":"contrast","factor":11}`, "ops[0].factor", "contrast.factor must be between 0 and 10"},
		{`{"op":"saturation","factor":"more"}`, "ops[0].factor", "saturation.factor must be a number, not a string"},
		{`{"op":"gamma","gamma":0}`, "ops[0].gamma", "gamma.gamma must be between 0.1 and 10"},
		{`{"op":"invert","x":1}`, "ops[0].x", `invert has no parameter "x"`},
		{`{"op":"threshold","threshold":256}`, "ops[0].threshold", "threshold.threshold must be between 0 and 255"},
		{`{"op":"sepia","tone":1}`, "ops[0].tone", `sepia has no parameter "tone"`},
		{`{"op":"pixelate","size":1}`, "ops[0].size", "pixelate.size must be between 2 and 1000"},
		{`{"op":"emboss","strength":0}`, "ops[0].strength", "emboss.strength must be between 0.1 and 10"},
		{`{"op":"trim","threshold":300}`, "ops[0].threshold", "trim.threshold must be between 0 and 255"},
		{`{"op":"trim","background":"mauve"}`, "ops[0].background", "trim.background must be a colour"},
		{`{"op":"watermark"}`, "ops[0].text", "watermark.text is required"},
		{`{"op":"watermark","text":"x","opacity":2}`, "ops[0].opacity", "watermark.opacity must be between 0 and 1"},
		{`{"op":"watermark","text":"x","size":2}`, "ops[0].size", "watermark.size must be between 4 and 1000"},
		{`{"op":"watermark","text":"x","font":"comic"}`, "ops[0].font", "watermark.font must be one of sans, bold, mono"},
		{`{"op":"watermark","text":"x","gravity":"smart"}`, "ops[0].gravity", "watermark.gravity must be one of"},
		{`{"op":"watermark","text":"` + strings.Repeat("x", 201) + `"}`, "ops[0].text", "at most 200 characters"},
		// The op at fault is named by its index.
		{`{"op":"flip"},{"op":"blur","sigma":-1}`, "ops[1].sigma", "blur.sigma must be between"},
		{`{"op":"explode"}`, "ops[0].op", `unknown op "explode"; known ops: blur, brightness, contrast, convert, crop`},
	} {
		t.Run(tc.ops, func(t *testing.T) {
			ops := parseOps(t, "["+tc.ops+"]")
			for _, err := range []error{p.Validate(ops), processErr(t, p, src, "["+tc.ops+"]", imaged.EInvalid)} {
				e, ok := err.(*imaged.Error)
				if !ok || e.Code != imaged.EInvalid {
					t.Fatalf("got %v, want an EInvalid error", err)
				}
				if e.Field != tc.field || !strings.Contains(e.Message, tc.text) {
					t.Fatalf("got field %q message %q; want field %q and a message with %q", e.Field, e.Message, tc.field, tc.text)
				}
			}
		})
	}
}

func TestValidateAcceptsGoodPipelines(t *testing.T) {
	p := New(Config{})
	for _, ops := range []string{
		`[{"op":"resize","width":800,"height":600,"fit":"inside"},{"op":"blur","sigma":2},{"op":"convert","format":"webp","quality":80}]`,
		`[{"op":"crop","x":0,"y":0,"width":1,"height":1},{"op":"rotate","angle":-12.5,"background":"#ffffff80"}]`,
		`[{"op":"flip","direction":"vertical"},{"op":"flop"},{"op":"grayscale"},{"op":"sharpen"},{"op":"edge","method":"sobel"}]`,
		`[{"op":"convert","format":"auto"},{"op":"info"},{"op":"pad","width":10,"background":[1,2,3,4]},{"op":"trim"}]`,
		`[{"op":"brightness","factor":1.1},{"op":"contrast","factor":1},{"op":"saturation","factor":0},{"op":"gamma"},{"op":"invert"},{"op":"threshold"},{"op":"sepia"},{"op":"pixelate"},{"op":"emboss"},{"op":"watermark","text":"© imaged\nline two","font":"mono"}]`,
		`[{"op":"RESIZE","width":10}]`,
	} {
		if err := p.Validate(parseOps(t, ops)); err != nil {
			t.Errorf("%s: %v", ops, err)
		}
	}
	if err := p.Validate(nil); imaged.ErrorCode(err) != imaged.EInvalid {
		t.Errorf("empty pipeline: %v", err)
	}
}
