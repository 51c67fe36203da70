package imager

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"cairn/internal/repo"
)

// rescueStep is the piece a failed read is read again in before going sector by
// sector: a bad sector costs at most the other sectors of its piece read twice.
const rescueStep = 64 << 10

// maxUnreadable is how many unreadable bytes an image tolerates: beyond that the
// source is failing more than an image should paper over, and a copy with a tool
// made for it (ddrescue) comes first.
const maxUnreadable = 64 << 20

// rescuer reads a source, putting zeros where it has bad sectors and keeping a
// list of them. Its methods are safe for concurrent use.
type rescuer struct {
	r      io.ReaderAt
	sector int
	warn   func(string)

	mu    sync.Mutex
	bad   []repo.ByteRange // sorted, merged
	total int64
}

// readAt fills p from off. A read that fails with a media error (isMediaError) is
// read again in pieces of rescueStep bytes, and a piece that fails sector by
// sector; a sector that still fails reads as zeros and is recorded. Other errors,
// and more than maxUnreadable bytes in all, are returned.
func (rs *rescuer) readAt(p []byte, off int64) error {
	_, err := rs.r.ReadAt(p, off)
	if err == nil || errors.Is(err, io.EOF) || !isMediaError(err) {
		return err
	}
	// run is the unreadable run being gathered: recorded (and warned of) once a
	// read succeeds after it, or at the end.
	var run repo.ByteRange
	var cause error
	flush := func() error {
		if run.Length == 0 {
			return nil
		}
		err := rs.record(run.Offset, run.Length, cause)
		run = repo.ByteRange{}
		return err
	}
	for done := 0; done < len(p); done += rescueStep {
		piece := p[done:min(done+rescueStep, len(p))]
		_, err := rs.r.ReadAt(piece, off+int64(done))
		if err == nil || errors.Is(err, io.EOF) {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if !isMediaError(err) {
			return err
		}
		for s := 0; s < len(piece); s += rs.sector {
			sec := piece[s:min(s+rs.sector, len(piece))]
			at := off + int64(done+s)
			_, err := rs.r.ReadAt(sec, at)
			if err == nil || errors.Is(err, io.EOF) {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			if !isMediaError(err) {
				return err
			}
			clear(sec)
			if run.Length == 0 {
				run.Offset, cause = at, err
			}
			run.Length += int64(len(sec))
		}
	}
	return flush()
}

// record adds an unreadable run to the list and warns of it.
func (rs *rescuer) record(off, n int64, cause error) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.total += n
	if rs.total > maxUnreadable {
		return fmt.Errorf("more than %d MiB of the source cannot be read (the last at byte %d: %v): the disk is failing; copy it with ddrescue first and image the copy", maxUnreadable>>20, off, cause)
	}
	rs.bad = addByteRange(rs.bad, repo.ByteRange{Offset: off, Length: n})
	rs.warn(fmt.Sprintf("bytes %d to %d cannot be read (%v): stored as zeros", off, off+n, cause))
	return nil
}

// unreadable returns the runs that could not be read, sorted and merged.
func (rs *rescuer) unreadable() []repo.ByteRange {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]repo.ByteRange(nil), rs.bad...)
}

// addByteRange adds r to the sorted, merged list l and returns it, still sorted
// and merged.
func addByteRange(l []repo.ByteRange, r repo.ByteRange) []repo.ByteRange {
	i := 0
	for i < len(l) && l[i].Offset+l[i].Length < r.Offset {
		i++
	}
	j := i
	for j < len(l) && l[j].Offset <= r.Offset+r.Length {
		start := min(l[j].Offset, r.Offset)
		end := max(l[j].Offset+l[j].Length, r.Offset+r.Length)
		r = repo.ByteRange{Offset: start, Length: end - start}
		j++
	}
	out := append(l[:i:i], r)
	return append(out, l[j:]...)
}
