package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
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
