package fat

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// checkInvariants checks what every allocation promises.
func checkInvariants(t testing.TB, a *fs.Allocation, size int64) {
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

func probeBytes(b []byte) (*fs.Allocation, error) {
	return Probe(bytes.NewReader(b), int64(len(b)))
}

// TestTestdata checks the small images the fuzz target starts from.
func TestTestdata(t *testing.T) {
	for _, tc := range []struct{ name, typ string }{
		{"fat12", "fat12"},
		{"fat16", "fat16"},
		{"fat32", "fat32"},
		{"fat32small", "fat32"},
	} {
		img := testImage(t, tc.name)
		a, err := probeBytes(img)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkInvariants(t, a, int64(len(img)))
		if a.Type != tc.typ || a.Label != "CAIRN TEST" || a.UUID != "1234-ABCD" || a.Size != int64(len(img)) {
			t.Errorf("%s: %+v", tc.name, a)
		}
		// Everything outside the used extents is zero in these images, and
		// the files written are inside them.
		cp := make([]byte, len(img))
		for _, e := range a.Used {
			copy(cp[e.Off:e.Off+e.Len], img[e.Off:e.Off+e.Len])
		}
		if tc.name != "fat32small" {
			for _, s := range []string{"hello from " + tc.name, strings.Repeat("x", 5000)} {
				if !bytes.Contains(cp, []byte(s)) {
					t.Errorf("%s: %q is not in the used extents", tc.name, s)
				}
			}
			if bytes.Contains(cp, bytes.Repeat([]byte("y"), 3000)) {
				t.Errorf("%s: the deleted file's cluster is used", tc.name)
			}
		}
	}
}

// TestLabel checks where the label comes from: the root directory's volume
// label entry, else the boot sector's; "NO NAME" is none.
func TestLabel(t *testing.T) {
	img := testImage(t, "fat16")
	v, err := parseBoot(img[:512])
	if err != nil {
		t.Fatal(err)
	}
	root := img[v.rootDirStart:]
	if string(root[:11]) != "CAIRN TEST " || root[11] != 0x08 {
		t.Fatalf("the first root entry is not the label: %q", root[:12])
	}
	label := func() string {
		a, err := probeBytes(img)
		if err != nil {
			t.Fatal(err)
		}
		return a.Label
	}
	copy(root, "ROOT LABEL ")
	if got := label(); got != "ROOT LABEL" {
		t.Errorf("root label: %q", got)
	}
	copy(root, "NO NAME    ")
	if got := label(); got != "" {
		t.Errorf("root label NO NAME: %q", got)
	}
	root[0] = 0xE5 // deleted: the boot sector's label counts
	if got := label(); got != "CAIRN TEST" {
		t.Errorf("no root label: %q", got)
	}
	copy(img[0x2B:], "NO NAME    ")
	if got := label(); got != "" {
		t.Errorf("boot label NO NAME: %q", got)
	}
	copy(root, "\x05AB\x00       ") // 0x05 stands for 0xE5; a NUL ends the label
	if got := label(); got != "\xe5AB" {
		t.Errorf("label with 0x05: %q", got)
	}
}

// TestNotFAT checks that what is not FAT is fs.ErrUnknown.
func TestNotFAT(t *testing.T) {
	ntfs := make([]byte, 4096)
	copy(ntfs, "\xebR\x90NTFS    ")
	binary.LittleEndian.PutUint16(ntfs[0x0B:], 512)
	ntfs[0x0D] = 8
	ntfs[0x15] = 0xF8
	ntfs[510], ntfs[511] = 0x55, 0xAA
	exfat := make([]byte, 4096)
	copy(exfat, "\xebv\x90EXFAT   ")
	exfat[510], exfat[511] = 0x55, 0xAA
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xAA
	for name, b := range map[string][]byte{
		"empty": nil, "short": make([]byte, 100), "zeros": make([]byte, 1<<20),
		"ntfs": ntfs, "exfat": exfat, "mbr": mbr,
	} {
		if _, err := probeBytes(b); !errors.Is(err, fs.ErrUnknown) {
			t.Errorf("%s: %v, want fs.ErrUnknown", name, err)
		}
	}
}

// TestDamaged checks damaged boot sectors and FATs: an error or a sane
// allocation, never a panic.
func TestDamaged(t *testing.T) {
	for _, name := range []string{"fat12", "fat16", "fat32", "fat32small"} {
		good := testImage(t, name)
		v, err := parseBoot(good[:512])
		if err != nil {
			t.Fatal(err)
		}
		const (
			anyError = iota
			unknown  // fs.ErrUnknown
			damaged  // an error that is not fs.ErrUnknown
		)
		for _, tc := range []struct {
			what   string
			damage func(b []byte) []byte
			want   int
		}{
			{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, damaged},
			{"truncated to the boot sector", func(b []byte) []byte { return b[:512] }, damaged},
			{"truncated to 100 bytes", func(b []byte) []byte { return b[:100] }, unknown},
			{"no signature", func(b []byte) []byte { copy(b[0x36:], "XXXXXXXX"); copy(b[0x52:], "XXXXXXXX"); b[510] = 0; return b }, unknown},
			{"bad sector size", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[0x0B:], 1000); return b }, unknown},
			{"3 sectors per cluster", func(b []byte) []byte { b[0x0D] = 3; return b }, unknown},
			{"no FATs", func(b []byte) []byte { b[0x10] = 0; return b }, unknown},
			{"no reserved sectors", func(b []byte) []byte { b[0x0E], b[0x0F] = 0, 0; return b }, unknown},
			{"huge sector count", func(b []byte) []byte {
				binary.LittleEndian.PutUint16(b[0x13:], 0)
				binary.LittleEndian.PutUint32(b[0x20:], 0xFFFFFFFF)
				return b
			}, anyError},
			{"huge FAT", func(b []byte) []byte {
				if v.fat32Layout {
					binary.LittleEndian.PutUint32(b[0x24:], 0xFFFFFFF)
				} else {
					binary.LittleEndian.PutUint16(b[0x16:], 0xFFFF)
				}
				return b
			}, unknown},
		} {
			b := tc.damage(bytes.Clone(good))
			a, err := probeBytes(b)
			switch {
			case err == nil:
				t.Errorf("%s, %s: no error: %+v", name, tc.what, a)
			case tc.want == unknown && !errors.Is(err, fs.ErrUnknown):
				t.Errorf("%s, %s: %v, want fs.ErrUnknown", name, tc.what, err)
			case tc.want == damaged && errors.Is(err, fs.ErrUnknown):
				t.Errorf("%s, %s: %v, want an error other than fs.ErrUnknown", name, tc.what, err)
			}
		}

		// Any number of FATs: an error or a sane allocation.
		for _, n := range []byte{1, 3, 255} {
			b := bytes.Clone(good)
			b[0x10] = n
			if a, err := probeBytes(b); err == nil {
				checkInvariants(t, a, int64(len(b)))
			}
		}

		// A FAT too short for the clusters: only the clusters it has
		// entries for count, as in Linux.
		b := bytes.Clone(good)
		short := v.fatSecs / 2
		if v.fat32Layout {
			binary.LittleEndian.PutUint32(b[0x24:], uint32(short))
		} else {
			binary.LittleEndian.PutUint16(b[0x16:], uint16(short))
		}
		if a, err := probeBytes(b); err == nil {
			checkInvariants(t, a, int64(len(b)))
		}

		// A FAT full of garbage marks clusters used; none are outside the
		// volume.
		b = bytes.Clone(good)
		fat := b[v.reservedSecs*v.sectorSize : (v.reservedSecs+v.fatSecs)*v.sectorSize]
		for i := range fat {
			fat[i] = byte(i*7 + 3)
		}
		a, err := probeBytes(b)
		if err != nil {
			t.Fatalf("%s, garbage FAT: %v", name, err)
		}
		checkInvariants(t, a, int64(len(b)))
		if a.UsedBytes() <= v.dataStart {
			t.Errorf("%s, garbage FAT: only %d bytes used", name, a.UsedBytes())
		}
	}
}

// TestFAT12Entries checks 12-bit entries, packed two in three bytes.
func TestFAT12Entries(t *testing.T) {
	v := &volume{bits: 12}
	buf := []byte{0xF8, 0xFF, 0xFF, 0x03, 0x40, 0x00, 0xFF, 0x7F, 0xFF}
	want := []uint32{0xFF8, 0xFFF, 0x003, 0x004, 0xFFF, 0xFF7}
	for i, w := range want {
		if got := v.entry(buf, int64(i)); got != w {
			t.Errorf("entry %d: %#x, want %#x", i, got, w)
		}
	}
	if !v.bad(0xFF7) || v.bad(0xFFF) {
		t.Error("bad cluster mark")
	}
}
