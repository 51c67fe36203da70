package swap

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"cairn/internal/fs"
)

// testImage returns the decompressed testdata image name (see testdata/make.sh).
func testImage(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func probeBytes(b []byte) (*fs.Allocation, error) {
	return Probe(bytes.NewReader(b), int64(len(b)))
}

// checkInvariants checks what every allocation promises, and that a swap
// area uses its first page only.
func checkInvariants(t testing.TB, a *fs.Allocation, size int64) {
	t.Helper()
	if a.Type != "swap" || a.Size <= 0 || a.Size > size || a.BlockSize < 4096 || a.Size%int64(a.BlockSize) != 0 {
		t.Fatalf("%+v of %d bytes", a, size)
	}
	if len(a.Used) != 1 || a.Used[0] != (fs.Extent{Off: 0, Len: int64(a.BlockSize)}) {
		t.Fatalf("Used %v, want the first page of %d bytes", a.Used, a.BlockSize)
	}
}

const (
	testLabel = "cairn swap"
	testUUID  = "0f6a2b8e-6f1c-4a5e-9d3b-2c7e8f9a0b1c"
)

func TestTestdata(t *testing.T) {
	for name, ps := range map[string]int{"swap4k": 4096, "swap64k": 65536} {
		img := testImage(t, name)
		a, err := probeBytes(img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkInvariants(t, a, int64(len(img)))
		if a.Label != testLabel || a.UUID != testUUID || a.BlockSize != ps || a.Size != int64(len(img)) {
			t.Errorf("%s: %+v", name, a)
		}
		// A partition larger than the swap area: Size is the area's.
		big := append(bytes.Clone(img), make([]byte, 3*ps)...)
		if a, err := probeBytes(big); err != nil || a.Size != int64(len(img)) {
			t.Errorf("%s in a larger partition: %v, %+v", name, err, a)
		}
	}
}

// header returns a 40 KiB swap area of 4 KiB pages with a version 1 header
// in byte order o.
func header(o binary.ByteOrder, version, lastPage uint32, label string, uuid []byte) []byte {
	b := make([]byte, 10*4096)
	copy(b[4096-10:], "SWAPSPACE2")
	o.PutUint32(b[1024:], version)
	o.PutUint32(b[1028:], lastPage)
	copy(b[1036:], uuid)
	copy(b[1052:], label)
	return b
}

func TestHeaders(t *testing.T) {
	uuid := []byte{0x0f, 0x6a, 0x2b, 0x8e, 0x6f, 0x1c, 0x4a, 0x5e, 0x9d, 0x3b, 0x2c, 0x7e, 0x8f, 0x9a, 0x0b, 0x1c}
	for _, tc := range []struct {
		name        string
		b           []byte
		label, uuid string
		size        int64
	}{
		{"little-endian", header(binary.LittleEndian, 1, 9, "lbl", uuid), "lbl", testUUID, 40960},
		{"big-endian", header(binary.BigEndian, 1, 9, "lbl", uuid), "lbl", testUUID, 40960},
		{"label with trailing blanks", header(binary.LittleEndian, 1, 9, "a b  \t", uuid), "a b", testUUID, 40960},
		{"16-byte label", header(binary.LittleEndian, 1, 9, "0123456789abcdefXX", uuid), "0123456789abcdef", testUUID, 40960},
		{"no UUID", header(binary.LittleEndian, 1, 9, "", make([]byte, 16)), "", "", 40960},
		{"fewer pages than the partition", header(binary.LittleEndian, 1, 4, "", uuid), "", testUUID, 5 * 4096},
		{"more pages than the partition", header(binary.LittleEndian, 1, 1000, "", uuid), "", testUUID, 40960},
		{"garbage after the name", func() []byte {
			b := header(binary.LittleEndian, 1, 9, "lbl", uuid)
			b[1068+32*4] = 1 // blkid then ignores the label and UUID
			return b
		}(), "", "", 40960},
		{"version 0", func() []byte {
			b := make([]byte, 10*4096)
			copy(b[4096-10:], "SWAP-SPACE")
			return b
		}(), "", "", 40960},
	} {
		a, err := probeBytes(tc.b)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkInvariants(t, a, int64(len(tc.b)))
		if a.Label != tc.label || a.UUID != tc.uuid || a.Size != tc.size {
			t.Errorf("%s: %+v, want label %q, UUID %q, size %d", tc.name, a, tc.label, tc.uuid, tc.size)
		}
	}
}

func TestNotSwap(t *testing.T) {
	sig := func(s string, at int) []byte {
		b := make([]byte, 128<<10)
		copy(b[at:], s)
		return b
	}
	tuxOnIce := sig("SWAPSPACE2", 4086)
	copy(tuxOnIce, "\xed\xc3\x02\xe9\x98\x56\xe5\x0c")
	for name, b := range map[string][]byte{
		"empty":           nil,
		"zeros":           make([]byte, 1<<20),
		"too small":       sig("SWAPSPACE2", 4086)[:9*4096],
		"misplaced":       sig("SWAPSPACE2", 4000),
		"version 2":       header(binary.LittleEndian, 2, 9, "", nil),
		"no last page":    header(binary.LittleEndian, 1, 0, "", nil),
		"hibernation":     sig("S1SUSPEND", 4086),
		"hibernation 64k": sig("LINHIB0001", 65526),
		"ulsuspend":       sig("ULSUSPEND\x00", 8182),
		"TuxOnIce":        tuxOnIce,
	} {
		if a, err := probeBytes(b); !errors.Is(err, fs.ErrUnknown) {
			t.Errorf("%s: %v %+v, want fs.ErrUnknown", name, err, a)
		}
	}
	// A reader shorter than the size it claims: an error, not fs.ErrUnknown.
	b := header(binary.LittleEndian, 1, 9, "", nil)
	if _, err := Probe(bytes.NewReader(b[:1000]), int64(len(b))); err == nil || errors.Is(err, fs.ErrUnknown) {
		t.Errorf("short reader: %v", err)
	}
}
