package imager

import (
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"cairn/internal/repo"
)

// badDisk is a disk of data whose reads fail with err when they touch a bad run.
type badDisk struct {
	data []byte
	bad  []repo.ByteRange
	err  error
}

func (d *badDisk) ReadAt(p []byte, off int64) (int, error) {
	for _, b := range d.bad {
		if off < b.Offset+b.Length && b.Offset < off+int64(len(p)) {
			return 0, d.err
		}
	}
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	n := copy(p, d.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestRescuerReadsAroundBadSectors(t *testing.T) {
	data := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32() | 1) // no zero bytes: zeros can only come from the rescue
	}
	bad := []repo.ByteRange{{Offset: 1000, Length: 10}, {Offset: 70000, Length: 1500}, {Offset: 71000, Length: 100}, {Offset: 512 << 10, Length: 64 << 10}}
	var warnings []string
	rs := &rescuer{r: &badDisk{data: data, bad: bad, err: &fsPathError{syscall.EIO}}, sector: 512, warn: func(s string) { warnings = append(warnings, s) }}
	got := make([]byte, len(data))
	for off := 0; off < len(data); off += 256 << 10 {
		if err := rs.readAt(got[off:off+256<<10], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	// What reads as zeros: every sector a bad run touches, and nothing else.
	want := []repo.ByteRange{{Offset: 512, Length: 512}, {Offset: 69632, Length: 2048}, {Offset: 512 << 10, Length: 64 << 10}}
	if u := rs.unreadable(); !slices.Equal(u, want) {
		t.Fatalf("unreadable %v, want %v", u, want)
	}
	for off := range data {
		inBad := slices.ContainsFunc(want, func(r repo.ByteRange) bool { return int64(off) >= r.Offset && int64(off) < r.Offset+r.Length })
		if inBad && got[off] != 0 || !inBad && got[off] != data[off] {
			t.Fatalf("byte %d: %d (bad sector: %v), source %d", off, got[off], inBad, data[off])
		}
	}
	if len(warnings) == 0 || !strings.Contains(warnings[0], "bytes 512 to 1024 cannot be read") {
		t.Errorf("warnings %q", warnings)
	}

	// An error that is not the medium's is returned, not papered over.
	other := &rescuer{r: &badDisk{data: data, bad: bad, err: errors.New("device gone")}, sector: 512, warn: func(string) {}}
	if err := other.readAt(make([]byte, 4096), 0); err == nil || !strings.Contains(err.Error(), "device gone") {
		t.Errorf("a read of a vanished device: %v", err)
	}
}

func TestRescuerGivesUpOnFailingDisk(t *testing.T) {
	rs := &rescuer{r: &badDisk{data: make([]byte, 100<<20), bad: []repo.ByteRange{{Offset: 0, Length: 100 << 20}}, err: syscall.EIO}, sector: 4096, warn: func(string) {}}
	buf := make([]byte, 1<<20)
	var err error
	for off := int64(0); off < 100<<20 && err == nil; off += 1 << 20 {
		err = rs.readAt(buf, off)
	}
	if err == nil || !strings.Contains(err.Error(), "ddrescue") {
		t.Fatalf("100 MiB of bad sectors: %v, want the image to stop", err)
	}
}

func TestAddByteRange(t *testing.T) {
	var l []repo.ByteRange
	for _, r := range []repo.ByteRange{{Offset: 100, Length: 10}, {Offset: 0, Length: 10}, {Offset: 200, Length: 5}, {Offset: 10, Length: 5}, {Offset: 105, Length: 100}} {
		l = addByteRange(l, r)
	}
	if want := []repo.ByteRange{{Offset: 0, Length: 15}, {Offset: 100, Length: 105}}; !slices.Equal(l, want) {
		t.Fatalf("%v, want %v", l, want)
	}
}

// fsPathError wraps an errno as os.PathError does, to check errors.Is unwraps it.
type fsPathError struct{ errno syscall.Errno }

func (e *fsPathError) Error() string { return "read /dev/sdx: " + e.errno.Error() }
func (e *fsPathError) Unwrap() error { return e.errno }
