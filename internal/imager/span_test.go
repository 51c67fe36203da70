package imager

import (
	"math/rand/v2"
	"testing"

	"cairn/internal/repo"
)

// TestSpanOf checks ImageRegion.SpanOf against every span of small regions: each chunk of
// a span, given the span's length, finds that span, and a length that is no
// span's fails.
func TestSpanOf(t *testing.T) {
	const cs = 4096
	for _, size := range []int64{cs, 3 * cs, 8 * cs, 13*cs + 100, 64*cs - 1, 100 * cs} {
		reg := &repo.ImageRegion{Size: size, ChunkSize: cs}
		total := reg.NumChunks()
		for l := int64(1); l < 2*total; l *= 2 {
			for s := int64(0); s < total; s += l {
				e := min(s+l, total)
				_, n := spanBytes(reg, s, e)
				for i := s; i < e; i++ {
					gs, ge, err := reg.SpanOf(i, n)
					if err != nil || gs != s || ge != e {
						t.Fatalf("size %d: chunk %d, %d bytes: span [%d, %d) %v, want [%d, %d)", size, i, n, gs, ge, err, s, e)
					}
				}
			}
		}
		for i := int64(0); i < total; i++ {
			for _, n := range []int64{0, -1, 3 * cs, cs + 1, size + 1} {
				if n == 3*cs && size == 3*cs && i < 3 {
					continue // the whole region of three chunks, clipped
				}
				if s, e, err := reg.SpanOf(i, n); err == nil {
					t.Errorf("size %d: chunk %d, %d bytes: span [%d, %d)", size, i, n, s, e)
				}
			}
		}
		if _, _, err := reg.SpanOf(total, cs); err == nil {
			t.Errorf("size %d: chunk %d outside the region has a span", size, total)
		}
	}
}

// TestPieces checks that pieces cuts any run into aligned spans of powers of
// two, no longer than asked, that cover it exactly.
func TestPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		most := int64(1) << rng.IntN(9)
		start := rng.Int64N(1000)
		end := start + 1 + rng.Int64N(600)
		next := start
		for _, p := range pieces(start, end, most) {
			l := p[1] - p[0]
			if p[0] != next || l <= 0 || l > most || l&(l-1) != 0 || p[0]%l != 0 {
				t.Fatalf("pieces(%d, %d, %d): %v after %d", start, end, most, p, next)
			}
			next = p[1]
		}
		if next != end {
			t.Fatalf("pieces(%d, %d, %d) end at %d", start, end, most, next)
		}
	}
}

func TestCoveringSpan(t *testing.T) {
	for _, c := range []struct{ first, last, total, s, e int64 }{
		{0, 0, 10, 0, 1},
		{3, 3, 10, 3, 4},
		{2, 3, 10, 2, 4},
		{3, 4, 10, 0, 8},
		{9, 9, 10, 9, 10},
		{8, 9, 10, 8, 10},
		{5, 9, 10, 0, 10},
		{256, 511, 1000, 256, 512},
	} {
		if s, e := coveringSpan(c.first, c.last, c.total); s != c.s || e != c.e {
			t.Errorf("coveringSpan(%d, %d, %d) = [%d, %d), want [%d, %d)", c.first, c.last, c.total, s, e, c.s, c.e)
		}
	}
}
