package ntfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"testing"

	cfs "cairn/internal/fs"
)

// Bounds of one fuzz input's walk.
const (
	fuzzMaxEntries = 2000
	fuzzMaxBytes   = 4 << 20
)

var errEnough = errors.New("enough")

// walkBounded walks rd, reading files, up to fuzzMaxEntries entries and
// fuzzMaxBytes bytes of content. It fails t if the reader breaks a promise
// of fs.Reader (names, order, sizes) or fails other than by reporting
// damage.
func walkBounded(t *testing.T, rd cfs.Reader) {
	var entries, read int64
	err := walk(rd, func(p string, e *cfs.Entry) error {
		if entries++; entries > fuzzMaxEntries {
			return errEnough
		}
		if e.Size < 0 || (e.Type == cfs.TypeSymlink) != (e.LinkTarget != "") {
			return fmt.Errorf("%w: %s: %+v", errBroken, p, e)
		}
		for _, x := range e.Xattrs {
			if len(x.Value) > maxStreamXattr {
				return fmt.Errorf("%w: %s: xattr %q of %d bytes", errBroken, p, x.Name, len(x.Value))
			}
		}
		if e.Type != cfs.TypeFile || read+e.Size > fuzzMaxBytes {
			return nil
		}
		read += e.Size
		if _, err := readAll(rd, e); err != nil && !errors.Is(err, errCorrupt) {
			return err
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) && !errors.Is(err, errCorrupt) {
		t.Fatal(err)
	}
}

// sectorImage is an image whose non-zero 512-byte sectors are packed: the
// sectors listed in at, in order, hold data; every other byte up to size is
// zero. A fuzz input is the packed data of an image whose layout is fixed.
type sectorImage struct {
	at   []int64 // sector numbers, sorted
	data []byte
	size int64
}

// packSectors returns the layout and packed data of img's non-zero sectors,
// the backup boot sector at the end left out.
func packSectors(img []byte) ([]int64, []byte) {
	var at []int64
	var data []byte
	for s := int64(0); (s+1)*512 < int64(len(img)); s++ {
		sec := img[s*512 : (s+1)*512]
		if bytes.Count(sec, []byte{0}) != 512 {
			at = append(at, s)
			data = append(data, sec...)
		}
	}
	return at, data
}

func (m sectorImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := m.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	// The packed sectors that overlap [off, off+n).
	first, last := off/512, (off+int64(n)-1)/512
	for i := sort.Search(len(m.at), func(i int) bool { return m.at[i] >= first }); i < len(m.at) && m.at[i] <= last; i++ {
		src := int64(i) * 512
		if src >= int64(len(m.data)) {
			break
		}
		sec := m.data[src:min(src+512, int64(len(m.data)))]
		dst := m.at[i]*512 - off
		if dst < 0 {
			sec = sec[min(-dst, int64(len(sec))):]
			dst = 0
		}
		copy(p[dst:n], sec)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzReader opens testdata/reader.img with its non-zero sectors replaced by
// the fuzz input, and walks all of it: errors, never a panic, a hang, a
// short read or a broken promise of fs.Reader.
func FuzzReader(f *testing.F) {
	img := readerImage(f)
	at, data := packSectors(img)
	f.Add(data)
	old := testImage(f) // testdata/ntfs.img has another layout: its boot
	// sector and $MFT are laid over reader.img's sectors
	f.Add(bytes.Clone(old[:len(data)]))
	size := int64(len(img))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := Open(sectorImage{at, data, size}, size)
		if err != nil {
			return
		}
		walkBounded(t, rd)
	})
}

// compressLZNT1 is a simple LZNT1 compressor, greedy, for tests: it finds
// back references through a hash of three bytes, and stores a chunk as it
// is when compressing does not make it smaller.
func compressLZNT1(src []byte) []byte {
	var out []byte
	for len(src) > 0 {
		chunk := src[:min(len(src), lzntChunk)]
		src = src[len(chunk):]
		var c []byte
		last := map[[3]byte]int{}
		for pos := 0; pos < len(chunk); {
			flagAt := len(c)
			c = append(c, 0)
			for bit := 0; bit < 8 && pos < len(chunk); bit++ {
				lenBits := 12
				for p := pos - 1; p >= 0x10; p >>= 1 {
					lenBits--
				}
				maxLen := 1<<lenBits - 1 + 3
				bestLen, bestBack := 0, 0
				if pos+3 <= len(chunk) {
					key := [3]byte(chunk[pos : pos+3])
					if cand, ok := last[key]; ok && pos-cand <= 1<<(16-lenBits) {
						n := 0
						for pos+n < len(chunk) && n < maxLen && chunk[cand+n] == chunk[pos+n] {
							n++
						}
						bestLen, bestBack = n, pos-cand
					}
				}
				step := 1
				if bestLen >= 3 {
					c[flagAt] |= 1 << bit
					tok := (bestBack-1)<<lenBits | (bestLen - 3)
					c = append(c, byte(tok), byte(tok>>8))
					step = bestLen
				} else {
					c = append(c, chunk[pos])
				}
				for k := pos; k < pos+step && k+3 <= len(chunk); k++ {
					last[[3]byte(chunk[k:k+3])] = k
				}
				pos += step
			}
		}
		if len(c) >= lzntChunk {
			// Stored, padded to a whole chunk: the unit's data ends
			// where the file does.
			out = append(out, 0xFF, 0x3F)
			out = append(out, chunk...)
			out = append(out, make([]byte, lzntChunk-len(chunk))...)
			continue
		}
		h := 0xB000 | (len(c) - 1)
		out = append(out, byte(h), byte(h>>8))
		out = append(out, c...)
	}
	return out
}

func TestLZNT1(t *testing.T) {
	random := make([]byte, 3*lzntChunk+100)
	rand.NewChaCha8([32]byte{1}).Read(random)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte("x")},
		{"repeats", bytes.Repeat([]byte("abc"), 10000)},
		{"zeros", make([]byte, 16*lzntChunk)},
		{"random", random},
		{"text", bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 500)},
	} {
		comp := compressLZNT1(tc.data)
		unit := (len(tc.data) + lzntChunk - 1) / lzntChunk * lzntChunk
		got := make([]byte, unit+lzntChunk)
		for i := range got {
			got[i] = 0xAA // the tail must be zeroed
		}
		if err := decompressLZNT1(got, comp); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := append(bytes.Clone(tc.data), make([]byte, len(got)-len(tc.data))...)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: round trip differs", tc.name)
		}
		t.Logf("%s: %d bytes compressed to %d", tc.name, len(tc.data), len(comp))
	}
	// A hand-made chunk: "abc", then a reference 3 back of length 6, then
	// "d": "abcabcabcd". At position 3 the token has 4 bits of offset and
	// 12 of length: offset 3 is (3-1)<<12, length 6 is 6-3.
	chunk := []byte{0x08, 'a', 'b', 'c', 0x03, 0x20, 'd'}
	src := append([]byte{byte(len(chunk) - 1), 0xB0}, chunk...)
	got := make([]byte, lzntChunk)
	if err := decompressLZNT1(got, src); err != nil || string(got[:10]) != "abcabcabcd" || got[10] != 0 {
		t.Errorf("%q, %v", got[:12], err)
	}
	for _, bad := range []struct {
		what string
		data []byte
	}{
		{"a reference at position 0", []byte{0x02, 0xB0, 0x01, 0x00, 0x00}},
		{"a chunk past the data", []byte{0x10, 0xB0}},
		{"a short stored chunk", []byte{0x04, 0x30, 1, 2, 3, 4, 5}},
		{"a truncated reference", []byte{0x02, 0xB0, 0x02, 'a', 0x00}},
		{"a reference past the chunk", []byte{0x03, 0xB0, 0x02, 'a', 0xFF, 0x0F}},
		{"more than the unit", []byte{0x01, 0xB0, 0x00, 'a', 0x01, 0xB0, 0x00, 'a'}},
	} {
		if err := decompressLZNT1(make([]byte, lzntChunk), bad.data); !errors.Is(err, errLZNT1) {
			t.Errorf("%s: %v", bad.what, err)
		}
	}
}

// FuzzLZNT1 decompresses arbitrary data into a unit of 16 chunks (an error
// or a full unit, never a panic), and checks that what compressLZNT1 makes
// of it decompresses to it.
func FuzzLZNT1(f *testing.F) {
	f.Add([]byte{0x06, 0xB0, 0x08, 'a', 'b', 'c', 0x03, 0x20, 'd'})
	f.Add(compressLZNT1(bytes.Repeat([]byte("cairn "), 3000)))
	f.Add(compressLZNT1([]byte("hello, hello, hello")))
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := make([]byte, 16*lzntChunk)
		if err := decompressLZNT1(dst, data); err != nil && !errors.Is(err, errLZNT1) {
			t.Fatal(err)
		}
		if len(data) > 16*lzntChunk {
			return
		}
		clear(dst)
		if err := decompressLZNT1(dst, compressLZNT1(data)); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if !bytes.Equal(dst[:len(data)], data) || bytes.Count(dst[len(data):], []byte{0}) != len(dst)-len(data) {
			t.Fatal("round trip differs")
		}
	})
}
