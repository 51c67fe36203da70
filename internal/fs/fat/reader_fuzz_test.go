package fat

import (
	"bytes"
	"errors"
	"fmt"
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
		if e.Size < 0 || (e.Type != cfs.TypeFile && e.Type != cfs.TypeDir) {
			return fmt.Errorf("%w: %s: %+v", errBroken, p, e)
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

// FuzzReader opens the start of a small real volume, zero-padded to the
// size its boot sector claims (at most fuzzMaxSize), and walks all of it:
// errors, never a panic, a hang, a short read or a broken promise of
// fs.Reader.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"reader", "fat16", "fat32small"} {
		f.Add(bytes.TrimRight(testImage(f, name), "\x00"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		if len(data) >= 512 {
			if v, err := parseBoot(data[:512]); err == nil {
				size = max(size, min(v.totalSecs*v.sectorSize, fuzzMaxSize))
			}
		}
		rd, err := Open(zeroPadded{data, size}, size)
		if err != nil {
			return
		}
		walkBounded(t, rd)
	})
}
