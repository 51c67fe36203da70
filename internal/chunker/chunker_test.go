package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"slices"
	"testing"
	"testing/iotest"
)

func collect(t testing.TB, c Chunker) [][]byte {
	var out [][]byte
	var off uint64
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Offset != off {
			t.Fatalf("chunk offset %d, want %d", ch.Offset, off)
		}
		off += uint64(len(ch.Data))
		out = append(out, append([]byte(nil), ch.Data...))
	}
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestCDCReassemblesAndRespectsSizes(t *testing.T) {
	data := randomBytes(40<<20, 1)
	c, err := NewCDC(bytes.NewReader(data), DefaultSizes, 42)
	if err != nil {
		t.Fatal(err)
	}
	chunks := collect(t, c)
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("chunks do not reassemble the input")
	}
	for i, ch := range chunks {
		if len(ch) > DefaultSizes.Max || (len(ch) < DefaultSizes.Min && i != len(chunks)-1) {
			t.Fatalf("chunk %d has size %d outside [%d, %d]", i, len(ch), DefaultSizes.Min, DefaultSizes.Max)
		}
	}
	if n := len(chunks); n < 20 || n > 80 {
		t.Fatalf("%d chunks for 40 MiB, expected about 40", n)
	}
}

func TestCDCInsertionKeepsMostChunks(t *testing.T) {
	data := randomBytes(32<<20, 2)
	edited := append(append(append([]byte{}, data[:10<<20]...), []byte("inserted bytes")...), data[10<<20:]...)
	set := map[string]bool{}
	c, _ := NewCDC(bytes.NewReader(data), DefaultSizes, 42)
	for _, ch := range collect(t, c) {
		set[string(ch)] = true
	}
	c, _ = NewCDC(bytes.NewReader(edited), DefaultSizes, 42)
	chunks := collect(t, c)
	changed := 0
	for _, ch := range chunks {
		if !set[string(ch)] {
			changed++
		}
	}
	if changed > 2 {
		t.Fatalf("an insertion changed %d of %d chunks, want at most 2", changed, len(chunks))
	}
}

func TestFixed(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 5} {
		data := randomBytes(n, int64(n))
		chunks := collect(t, NewFixed(bytes.NewReader(data), 4096))
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("size %d: chunks do not reassemble the input", n)
		}
		for i, ch := range chunks[:max(0, len(chunks)-1)] {
			if len(ch) != 4096 {
				t.Fatalf("size %d: chunk %d has %d bytes", n, i, len(ch))
			}
		}
	}
}

func BenchmarkCDC(b *testing.B) {
	data := randomBytes(64<<20, 3)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, _ := NewCDC(bytes.NewReader(data), DefaultSizes, 42)
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

func TestCDCSeedChangesBoundariesAndResetReuses(t *testing.T) {
	data := randomBytes(16<<20, 4)
	a, _ := NewCDC(bytes.NewReader(data), DefaultSizes, 1)
	b, _ := NewCDC(bytes.NewReader(data), DefaultSizes, 2)
	ca, cb := collect(t, a), collect(t, b)
	if len(ca) > 1 && len(cb) > 1 && len(ca[0]) == len(cb[0]) && len(ca[1]) == len(cb[1]) {
		t.Errorf("different seeds cut at the same places")
	}
	a.Reset(bytes.NewReader(data), -1)
	again := collect(t, a)
	if len(again) != len(ca) || !bytes.Equal(bytes.Join(again, nil), data) {
		t.Fatalf("after Reset: %d chunks, want %d", len(again), len(ca))
	}
	small := []byte("tiny")
	a.Reset(bytes.NewReader(small), int64(len(small)))
	if got := collect(t, a); len(got) != 1 || !bytes.Equal(got[0], small) {
		t.Fatalf("small input: %q", got)
	}
	a.Reset(bytes.NewReader(nil), 0)
	if got := collect(t, a); len(got) != 0 {
		t.Fatalf("empty input gave %d chunks", len(got))
	}
	if _, err := NewCDC(nil, Sizes{Min: 1000, Avg: 3000, Max: 9000}, 0); err == nil {
		t.Fatal("an average that is not a power of two must be refused")
	}
}

// A wrong size hint costs only chunk boundaries, never data.
func TestCDCWrongSizeHint(t *testing.T) {
	data := randomBytes(5<<20, 9)
	c, _ := NewCDC(nil, DefaultSizes, 3)
	c.Reset(bytes.NewReader(data), 100)
	if got := bytes.Join(collect(t, c), nil); !bytes.Equal(got, data) {
		t.Fatal("chunks do not reassemble the input")
	}
}

// goldenData is random bytes with a long low-entropy run in the middle, so that the
// cuts include chunks of the maximum size.
func goldenData(seed int64) []byte {
	b := randomBytes(24<<20, seed)
	for i := 5 << 20; i < 14<<20; i++ {
		b[i] = byte(i / 4096 % 3)
	}
	return b
}

// The cut points are part of the repository format: a change would make every file
// of an old snapshot look new. These were made by the chunker that read ahead twice
// the maximum chunk size (commit 87a8e87), whatever reads ahead now must cut the same.
func TestCDCGoldenCuts(t *testing.T) {
	golden := map[int64][]uint64{
		7: {0x11e7ce, 0x223885, 0x32f575, 0x3d9d68, 0xbd9d68, 0xe1a3dd, 0x102687e, 0x1128206, 0x11d1322, 0x12fb1c0, 0x143bae3, 0x1582ee6, 0x16a3970, 0x1771bd7, 0x1800000},
		8: {0x13240c, 0x250f58, 0x36d413, 0x42a628, 0xc2a628, 0xe2f873, 0xf5a4eb, 0x10c6ca7, 0x11f7ce6, 0x1342d29, 0x13f9091, 0x152ec4d, 0x1669ef0, 0x1714aa8, 0x1800000},
	}
	readers := map[string]func([]byte) io.Reader{
		"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"data+EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for seed, want := range golden {
		data := goldenData(seed)
		for name, mk := range readers {
			for _, hint := range []int64{-1, int64(len(data)), 100} {
				c, err := NewCDC(nil, DefaultSizes, uint64(seed))
				if err != nil {
					t.Fatal(err)
				}
				c.Reset(mk(data), hint)
				var got []uint64
				for _, ch := range collect(t, c) {
					if len(got) == 0 {
						got = append(got, uint64(len(ch)))
					} else {
						got = append(got, got[len(got)-1]+uint64(len(ch)))
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d, %s reader, size hint %d: cuts %#v, want %#v", seed, name, hint, got, want)
				}
				c.Release()
			}
		}
	}
}

// A large stream is chunked with a buffer of a few average chunks, grown only as far
// as the longest chunk needs, and given back for the next stream by Release.
func TestCDCBufferStaysSmall(t *testing.T) {
	for len(largeBufs) > 0 {
		<-largeBufs
	}
	c, _ := NewCDC(nil, DefaultSizes, 1)
	if c.buf != nil || c.small != nil {
		t.Fatal("a chunker without a stream holds a buffer")
	}
	c.Reset(bytes.NewReader(randomBytes(32<<20, 5)), -1)
	collect(t, c)
	if n := len(c.buf); n > 4*DefaultSizes.Avg {
		t.Fatalf("random data (no chunk near the maximum) grew the buffer to %d bytes", n)
	}
	c.Release()
	if len(largeBufs) != 1 {
		t.Fatalf("%d buffers kept after Release, want 1", len(largeBufs))
	}
	c.Reset(bytes.NewReader(goldenData(7)), -1)
	collect(t, c)
	if n := len(c.buf); n > DefaultSizes.Max {
		t.Fatalf("buffer grew to %d bytes, beyond the maximum chunk size", n)
	}
	c.Release()
	if len(largeBufs) != 0 {
		t.Fatal("a buffer grown for a long chunk was kept")
	}
}

// A read error reaches the caller of Next.
func TestCDCReadError(t *testing.T) {
	c, _ := NewCDC(nil, DefaultSizes, 1)
	c.Reset(iotest.TimeoutReader(bytes.NewReader(randomBytes(3<<20, 6))), -1)
	for {
		_, err := c.Next()
		if errors.Is(err, iotest.ErrTimeout) {
			return
		}
		if err != nil {
			t.Fatalf("got %v, want the reader's error", err)
		}
	}
}
