package ext

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Replaying the journal. A filesystem imaged while mounted (or not cleanly
// unmounted) is flagged needs_recovery: its journal may hold committed copies
// of metadata blocks (inodes, folders, tree nodes, xattr blocks, and with
// data=journal file data) newer than those in place, which the kernel writes
// in place only when it checkpoints. Mounting replays them; the reader does
// the same in memory: it finds, as jbd2's recovery does, the transactions of
// the log that have a commit block, drops the copies revoked by a later (or
// the same) committed transaction, and reads each remaining block from its
// newest copy in the journal instead of its place. Checksums of the log are
// not verified, and fast commits (which replay as changes to files, not
// blocks) are not replayed: a file changed only by a fast commit is read as
// of the last full commit.

// journalCopy is where the newest committed copy of a block is: a block of
// the partition, inside the journal, and whether its first 4 bytes were
// escaped in the log (zeroed because they held the journal's magic number).
type journalCopy struct {
	phys   uint64
	escape bool
}

// journalOverlay maps filesystem blocks to their newest committed copies.
type journalOverlay struct {
	copies  map[uint64]journalCopy
	targets []uint64 // the keys of copies, sorted
}

// tidAfter reports whether transaction a comes after b, with sequence
// numbers wrapping (jbd2's tid_gt).
func tidAfter(a, b uint32) bool { return int32(a-b) > 0 }

// replayJournal returns the overlay of the journal's committed copies, nil
// when the filesystem needs no recovery or its log is empty.
func (f *filesystem) replayJournal() (*journalOverlay, error) {
	if !f.sb.incompat(incompatRecover) || !f.sb.compat(compatHasJournal) || f.sb.journalInum == 0 {
		return nil, nil
	}
	in, err := f.readInode(f.sb.journalInum)
	if err != nil {
		return nil, err
	}
	nblocks := min(in.size/uint64(f.blockSize), f.sb.blocksCount, 1<<32-1)
	jmap, err := f.blockMap(in, nblocks)
	if err != nil {
		return nil, err
	}
	j := &journalReader{f: f, m: jmap, buf: make([]byte, f.blockSize)}
	js, err := j.readSuper()
	if err != nil || js.start == 0 {
		return nil, err
	}

	// One pass over the log, noting every copy and revoke record with its
	// transaction, up to the first block that does not continue the log.
	type logged struct {
		seq    uint32
		target uint64
		pos    uint32
		escape bool
	}
	var copies, revokes []logged
	var tags []journalTag
	be := binary.BigEndian
	pos, seq := js.start, js.sequence
walk:
	for steps := uint32(0); steps < js.maxLen; steps++ {
		b, err := j.block(pos)
		if err != nil {
			return nil, err
		}
		if be.Uint32(b[0:]) != journalMagic || be.Uint32(b[8:]) != seq {
			break
		}
		switch be.Uint32(b[4:]) {
		case jbdDescriptor:
			tags = js.descriptorTags(b, tags[:0])
			for _, t := range tags {
				pos = js.next(pos)
				if steps++; steps >= js.maxLen {
					break walk
				}
				copies = append(copies, logged{seq, t.target, pos, t.escape})
			}
		case jbdCommit:
			seq++
		case jbdRevoke:
			// r_count, the bytes used, then 4- or 8-byte block numbers.
			size := 4
			if js.incompat&jbdIncompat64Bit != 0 {
				size = 8
			}
			used := min(int(be.Uint32(b[12:])), len(b))
			for off := 16; off+size <= used; off += size {
				target := uint64(be.Uint32(b[off:]))
				if size == 8 {
					target = be.Uint64(b[off:])
				}
				revokes = append(revokes, logged{seq: seq, target: target})
			}
		default:
			break walk
		}
		pos = js.next(pos)
	}
	end := seq // the transactions before end have a commit block

	revoked := make(map[uint64]uint32)
	for _, r := range revokes {
		if !tidAfter(end, r.seq) {
			continue
		}
		if s, ok := revoked[r.target]; !ok || tidAfter(r.seq, s) {
			revoked[r.target] = r.seq
		}
	}
	o := &journalOverlay{copies: make(map[uint64]journalCopy)}
	for _, c := range copies {
		if !tidAfter(end, c.seq) {
			continue // not committed
		}
		if s, ok := revoked[c.target]; ok && !tidAfter(c.seq, s) {
			continue
		}
		if c.target >= f.sb.blocksCount {
			return nil, fmt.Errorf("a copy of block %d, outside the filesystem", c.target)
		}
		phys, ok := jmap.lookup(uint64(c.pos))
		if !ok {
			return nil, fmt.Errorf("journal block %d is not mapped", c.pos)
		}
		o.copies[c.target] = journalCopy{phys, c.escape}
	}
	if len(o.copies) == 0 {
		return nil, nil
	}
	for t := range o.copies {
		o.targets = append(o.targets, t)
	}
	slices.Sort(o.targets)
	return o, nil
}

// readAt fills p from the partition at off, then puts in it the journal's
// copies of the blocks it covers.
func (r *reader) readAt(p []byte, off int64) error {
	if err := readFull(r.f.r, r.f.size, p, off); err != nil {
		return err
	}
	o := r.overlay
	if o == nil || len(p) == 0 {
		return nil
	}
	bs := r.f.blockSize
	first, last := uint64(off/bs), uint64((off+int64(len(p))-1)/bs)
	i, _ := slices.BinarySearch(o.targets, first)
	var blk []byte
	for ; i < len(o.targets) && o.targets[i] <= last; i++ {
		t := o.targets[i]
		c := o.copies[t]
		if blk == nil {
			blk = make([]byte, bs)
		}
		if err := readFull(r.f.r, r.f.size, blk, int64(c.phys)*bs); err != nil {
			return fmt.Errorf("reading the journal's copy of block %d: %w", t, err)
		}
		if c.escape {
			binary.BigEndian.PutUint32(blk, journalMagic)
		}
		start := int64(t) * bs
		lo, hi := max(off, start), min(off+int64(len(p)), start+bs)
		copy(p[lo-off:hi-off], blk[lo-start:])
	}
	return nil
}
