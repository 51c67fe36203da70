package fs

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSubtract(t *testing.T) {
	ext := func(v ...int64) []Extent {
		var out []Extent
		for i := 0; i < len(v); i += 2 {
			out = append(out, Extent{Off: v[i], Len: v[i+1]})
		}
		return out
	}
	cases := []struct{ a, b, want []Extent }{
		{ext(0, 100), nil, ext(0, 100)},
		{nil, ext(0, 100), nil},
		{ext(0, 100), ext(0, 100), nil},
		{ext(0, 100), ext(10, 20), ext(0, 10, 30, 70)},
		{ext(0, 100), ext(0, 10, 90, 50), ext(10, 80)},
		{ext(0, 10, 20, 10, 40, 10), ext(5, 20), ext(0, 5, 25, 5, 40, 10)},
		{ext(10, 10), ext(0, 5, 25, 5), ext(10, 10)},
	}
	for _, c := range cases {
		if got := Subtract(c.a, c.b); !slices.Equal(got, c.want) {
			t.Errorf("Subtract(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestSubtractRandom compares Subtract and Intersect with the same on bitmaps.
func TestSubtractRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200
	random := func() ([]Extent, []bool) {
		bits := make([]bool, n)
		var ext []Extent
		for range rng.IntN(8) {
			off, l := rng.Int64N(n), rng.Int64N(40)
			ext = append(ext, Extent{Off: off, Len: l})
			for i := off; i < min(off+l, n); i++ {
				bits[i] = true
			}
		}
		return Normalize(ext, n), bits
	}
	fromBits := func(bits []bool) []Extent {
		var ext []Extent
		for i, b := range bits {
			if b {
				ext = append(ext, Extent{Off: int64(i), Len: 1})
			}
		}
		return Normalize(ext, n)
	}
	for range 2000 {
		a, ab := random()
		b, bb := random()
		minus, and := make([]bool, n), make([]bool, n)
		for i := range n {
			minus[i] = ab[i] && !bb[i]
			and[i] = ab[i] && bb[i]
		}
		if got, want := Subtract(a, b), fromBits(minus); !slices.Equal(got, want) {
			t.Fatalf("Subtract(%v, %v) = %v, want %v", a, b, got, want)
		}
		if got, want := Intersect(a, b), fromBits(and); !slices.Equal(got, want) {
			t.Fatalf("Intersect(%v, %v) = %v, want %v", a, b, got, want)
		}
	}
}
