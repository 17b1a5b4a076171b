package imaged

import (
	"fmt"
	"reflect"
)

// WithDefaults returns c with its unset settings taken from def, a value of the same struct type
// that lists each setting's default. A field def leaves at its zero value is not touched; any
// other field of c takes def's value when it is unset: its zero value, or, for a number, below
// zero, so that a nonsensical negative timeout or count gets the default as well. Settings where
// zero or a negative number means something (-1 for "none") stay out of def and are defaulted
// by hand. It is the one home of the "use the default when not set" rule every adapter's
// configuration applies.
func WithDefaults[T any](c, def T) T {
	return fill(c, def, notPositive)
}

// WithDefaultsForZero is WithDefaults for configurations that check their values afterwards:
// only a zero value counts as unset, and a negative number stays for the check to refuse.
func WithDefaultsForZero[T any](c, def T) T {
	return fill(c, def, reflect.Value.IsZero)
}

func fill[T any](c, def T, unset func(reflect.Value) bool) T {
	dst := reflect.ValueOf(&c).Elem()
	if dst.Kind() != reflect.Struct {
		panic(fmt.Sprintf("imaged.WithDefaults: %T is not a struct", c))
	}
	src := reflect.ValueOf(def)
	for i := range src.NumField() {
		d, f := src.Field(i), dst.Field(i)
		if d.IsZero() || !f.CanSet() || !unset(f) {
			continue
		}
		f.Set(d)
	}
	return c
}

// notPositive reports whether v is zero or a number below zero.
func notPositive(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() <= 0
	case reflect.Float32, reflect.Float64:
		return v.Float() <= 0
	default:
		return v.IsZero()
	}
}
