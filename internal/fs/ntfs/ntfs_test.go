package ntfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	cfs "cairn/internal/fs"
)

// testImage returns the decompressed testdata image (see testdata/make.sh).
func testImage(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "ntfs.img.gz"))
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

// checkInvariants checks what every allocation promises.
func checkInvariants(t testing.TB, a *cfs.Allocation, size int64) {
	t.Helper()
	if a.Size <= 0 || a.Size > size || a.BlockSize <= 0 {
		t.Fatalf("Size %d (partition %d), BlockSize %d", a.Size, size, a.BlockSize)
	}
	end := int64(-1)
	for _, e := range a.Used {
		if e.Len <= 0 || e.Off <= end || e.Off+e.Len > a.Size {
			t.Fatalf("extent %+v after end %d, size %d: not sorted, merged and inside", e, end, a.Size)
		}
		end = e.Off + e.Len
	}
}

func probeBytes(b []byte) (*cfs.Allocation, error) {
	return Probe(bytes.NewReader(b), int64(len(b)))
}

// TestTestdata checks the small image the fuzz targets start from.
func TestTestdata(t *testing.T) {
	img := testImage(t)
	a, err := probeBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, a, int64(len(img)))
	if a.Type != "ntfs" || a.Label != "Cairn test" || a.UUID != "0123456789ABCDEF" || a.Size != int64(len(img)) {
		t.Errorf("%+v", a)
	}
	cp := make([]byte, len(img))
	for _, e := range a.Used {
		copy(cp[e.Off:e.Off+e.Len], img[e.Off:e.Off+e.Len])
	}
	if !bytes.Contains(cp, bytes.Repeat([]byte("x"), 5000)) {
		t.Error("the file's clusters are not used")
	}
	if bytes.Contains(cp, bytes.Repeat([]byte("y"), 5000)) {
		t.Error("the deleted file's clusters are used")
	}
	if !bytes.Equal(cp[len(cp)-512:], img[len(img)-512:]) || !bytes.Equal(cp[:512], img[:512]) {
		t.Error("the boot sectors are not used")
	}
}

// TestNotNTFS checks that what is not NTFS is fs.ErrUnknown.
func TestNotNTFS(t *testing.T) {
	fat := make([]byte, 4096)
	copy(fat, "\xeb<\x90mkfs.fat\x00\x02\x04\x01\x00\x02\x00\x02")
	fat[510], fat[511] = 0x55, 0xAA
	for name, b := range map[string][]byte{"empty": nil, "short": make([]byte, 100), "zeros": make([]byte, 1<<20), "fat": fat} {
		if _, err := probeBytes(b); !errors.Is(err, cfs.ErrUnknown) {
			t.Errorf("%s: %v, want fs.ErrUnknown", name, err)
		}
	}
}

// TestDamaged checks damaged volumes: an error, never a panic; fs.ErrUnknown
// only where blkid would not call it NTFS either.
func TestDamaged(t *testing.T) {
	good := testImage(t)
	v, err := open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	mftOff := v.mftLCN * v.clusterSize
	recOff := func(n int64) int64 { return mftOff + n*v.recordSize } // the first records are contiguous
	le := func(b []byte, off int64, n int, x uint64) {
		for i := range n {
			b[off+int64(i)] = byte(x >> (8 * i))
		}
	}
	const (
		unknown = iota + 1 // fs.ErrUnknown
		damaged            // an error that is not fs.ErrUnknown
	)
	for _, tc := range []struct {
		what   string
		damage func(b []byte) []byte
		want   int
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, damaged},
		{"truncated to the boot sector", func(b []byte) []byte { return b[:512] }, damaged},
		{"no signature", func(b []byte) []byte { copy(b[3:], "NTFX"); return b }, unknown},
		{"sector size 100", func(b []byte) []byte { le(b, 0x0B, 2, 100); return b }, unknown},
		{"3 sectors per cluster", func(b []byte) []byte { b[0x0D] = 3; return b }, unknown},
		{"clusters of 2^100 sectors", func(b []byte) []byte { b[0x0D] = 256 - 100; return b }, unknown},
		{"FAT fields set", func(b []byte) []byte { b[0x10] = 2; return b }, unknown},
		{"MFT records of 2^31 bytes", func(b []byte) []byte { b[0x40] = 256 - 31; return b }, unknown},
		{"MFT records of 100 clusters", func(b []byte) []byte { b[0x40] = 100; return b }, unknown},
		{"no sectors", func(b []byte) []byte { le(b, 0x28, 8, 0); return b }, unknown},
		{"2^64-1 sectors", func(b []byte) []byte { le(b, 0x28, 8, 1<<64-1); return b }, damaged},
		{"MFT past the end", func(b []byte) []byte { le(b, 0x30, 8, 1<<40); return b }, unknown},
		{"MFT on the wrong cluster", func(b []byte) []byte { le(b, 0x30, 8, uint64(v.mftLCN+1)); return b }, damaged},
		{"$MFT record not FILE", func(b []byte) []byte { copy(b[recOff(0):], "BAAD"); return b }, damaged},
		{"$MFT record torn", func(b []byte) []byte { b[recOff(0)+510]++; return b }, damaged},
		{"$Bitmap record torn", func(b []byte) []byte { b[recOff(6)+1022]++; return b }, damaged},
		{"$Bitmap record not in use", func(b []byte) []byte { b[recOff(6)+22] = 0; return b }, damaged},
		{"$Bitmap runlist past the volume", func(b []byte) []byte {
			return damageBitmapRuns(t, b, recOff(6), []byte{0x31, 0x01, 0xff, 0xff, 0x7f, 0})
		}, damaged},
		{"$Bitmap runlist with a bad header", func(b []byte) []byte { return damageBitmapRuns(t, b, recOff(6), []byte{0x9f, 0}) }, damaged},
		{"$Bitmap runlist too short", func(b []byte) []byte { return damageBitmapRuns(t, b, recOff(6), []byte{0}) }, damaged},
		{"$Bitmap runlist of 2^60 clusters", func(b []byte) []byte {
			return damageBitmapRuns(t, b, recOff(6), []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0x10, 0})
		}, damaged},
	} {
		b := tc.damage(bytes.Clone(good))
		a, err := probeBytes(b)
		switch {
		case err == nil:
			t.Errorf("%s: no error: %+v", tc.what, a)
		case tc.want == unknown && !errors.Is(err, cfs.ErrUnknown):
			t.Errorf("%s: %v, want fs.ErrUnknown", tc.what, err)
		case tc.want == damaged && errors.Is(err, cfs.ErrUnknown):
			t.Errorf("%s: %v, want an error other than fs.ErrUnknown", tc.what, err)
		}
	}

	// A damaged $Volume record only loses the label.
	b := bytes.Clone(good)
	copy(b[recOff(3):], "BAAD")
	if a, err := probeBytes(b); err != nil || a.Label != "" {
		t.Errorf("damaged $Volume: %v, %+v", err, a)
	}
}

// damageBitmapRuns replaces the runlist of $Bitmap's $DATA in the MFT record
// at off of img (before its update sequence is applied: the runlist is in
// the first 510 bytes).
func damageBitmapRuns(t testing.TB, img []byte, off int64, runs []byte) []byte {
	t.Helper()
	rec := bytes.Clone(img[off : off+1024])
	r, err := parseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	// Find the attribute's offset: walk the attributes as parseRecord does.
	pos := int64(rec[20]) | int64(rec[21])<<8
	for _, a := range r.Attrs {
		n := int64(rec[pos+4]) | int64(rec[pos+5])<<8
		if a.Type == attrData {
			runOff := pos + (int64(rec[pos+32]) | int64(rec[pos+33])<<8)
			if runOff+int64(len(runs)) > 510 {
				t.Fatal("the runlist is not in the first block")
			}
			copy(img[off+runOff:], runs)
			return img
		}
		pos += n
	}
	t.Fatal("no $DATA in $Bitmap")
	return nil
}
