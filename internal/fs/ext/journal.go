package ext

import (
	"encoding/binary"
	"fmt"

	"cairn/internal/fs"
)

// The jbd2 journal (all its numbers big-endian). A filesystem flagged
// needs_recovery was not cleanly unmounted: transactions committed to its
// journal may hold newer copies of block bitmaps than the bitmaps in place
// (the kernel writes them there only when it checkpoints), marking blocks
// whose data is already written. Replaying the journal would make them used,
// so Probe counts them used too.
//
// The log starts at block s_start of the journal with transaction s_sequence.
// Each transaction is descriptor blocks, each followed by the blocks it lists
// (copies of filesystem blocks, named by tags), revoke blocks, and a commit
// block; the next transaction follows with the next sequence number, wrapping
// from the end of the journal to s_first. Probe takes every copy of a block
// bitmap in the log, committed or not and revoked or not: more used blocks
// than a replay would give, never fewer.

const (
	journalMagic = 0xC03B3998 // h_magic of every journal metadata block

	// h_blocktype.
	jbdDescriptor   = 1
	jbdCommit       = 2
	jbdSuperblockV1 = 3
	jbdSuperblockV2 = 4
	jbdRevoke       = 5

	// s_feature_incompat of the journal superblock.
	jbdIncompat64Bit      = 0x02 // JBD2_FEATURE_INCOMPAT_64BIT: tags hold 64-bit block numbers
	jbdIncompatCsumV2     = 0x08 // JBD2_FEATURE_INCOMPAT_CSUM_V2: tags hold a 16-bit checksum
	jbdIncompatCsumV3     = 0x10 // JBD2_FEATURE_INCOMPAT_CSUM_V3: 16-byte tags
	jbdIncompatFastCommit = 0x20 // JBD2_FEATURE_INCOMPAT_FAST_COMMIT

	// t_flags of a tag.
	jbdFlagEscape   = 1 // the copy's first 4 bytes were the magic, zeroed in the log
	jbdFlagSameUUID = 2 // no 16-byte UUID follows the tag
	jbdFlagLastTag  = 8 // the descriptor's last tag
)

// journalSuper holds the fields of the journal superblock (journal block 0)
// used to walk the log; the comment on each names the field and its offset.
type journalSuper struct {
	blockType uint32 // h_blocktype, 0x04: 3 (v1) or 4 (v2)
	blockSize uint32 // s_blocksize, 0x0C
	maxLen    uint32 // s_maxlen, 0x10: blocks in the journal
	first     uint32 // s_first, 0x14: the first block of the log area
	sequence  uint32 // s_sequence, 0x18: the first transaction in the log
	start     uint32 // s_start, 0x1C: the block the log starts at; 0 when empty
	incompat  uint32 // s_feature_incompat, 0x28 (v2 only)
}

// addJournalBitmaps marks used every block that a copy of a block bitmap in
// the journal's log marks. When the log cannot be read that way (an external
// journal, fast commits, which replay as changes to files rather than blocks)
// every block of the filesystem is marked used: a safe, if large, answer.
// Nothing is added when the filesystem has no journal or its log is empty.
func (f *filesystem) addJournalBitmaps(u *usedList) error {
	everything := func() error {
		u.addBlocks(0, f.sb.blocksCount)
		return nil
	}
	if !f.sb.compat(compatHasJournal) {
		return nil // nothing to replay
	}
	if f.sb.journalInum == 0 {
		return everything() // an external journal, on another device
	}
	in, err := f.readInode(f.sb.journalInum)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	nblocks := min(in.size/uint64(f.blockSize), f.sb.blocksCount, 1<<32-1)
	jmap, err := f.blockMap(in, nblocks)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j := &journalReader{f: f, m: jmap, buf: make([]byte, f.blockSize)}
	js, err := j.readSuper()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if js.incompat&jbdIncompatFastCommit != 0 {
		return everything()
	}
	if js.start == 0 {
		return nil // the log is empty
	}

	// The groups whose block bitmap is at each block.
	bitmapGroups := make(map[uint64][]uint32)
	for g := range f.groupCount {
		b := f.groups[g].blockBitmap
		bitmapGroups[b] = append(bitmapGroups[b], g)
	}
	return j.walkLog(js, func(target uint64, copyBlock func() ([]byte, error)) error {
		groups := bitmapGroups[target]
		if len(groups) == 0 {
			return nil
		}
		b, err := copyBlock()
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		for _, g := range groups {
			f.addBitmap(u, g, b)
		}
		return nil
	})
}

// emptyJournalLog returns the byte extents of the log area of the internal
// journal when the log is empty: the filesystem is not flagged needs_recovery,
// the journal superblock is valid and its s_start is 0 (what a clean unmount,
// and fsfreeze, leave), and there are no fast commits. Nothing reads such a
// log again: mount (jbd2_journal_load) and e2fsck see s_start 0, replay
// nothing and start the next transaction at s_first, overwriting the old one.
// The extents are every journal block but block 0, the journal superblock;
// blocks of the journal inode's extent tree are not among them. It returns
// nil when the journal does not qualify or cannot be read: then all of it is
// needed.
func (f *filesystem) emptyJournalLog() []fs.Extent {
	if !f.sb.compat(compatHasJournal) || f.sb.journalInum == 0 || f.sb.incompat(incompatRecover) {
		return nil
	}
	in, err := f.readInode(f.sb.journalInum)
	if err != nil {
		return nil
	}
	nblocks := min(in.size/uint64(f.blockSize), f.sb.blocksCount, 1<<32-1)
	jmap, err := f.blockMap(in, nblocks)
	if err != nil {
		return nil
	}
	j := &journalReader{f: f, m: jmap, buf: make([]byte, f.blockSize)}
	js, err := j.readSuper()
	if err != nil || js.start != 0 || js.incompat&jbdIncompatFastCommit != 0 {
		return nil
	}
	if _, ok := jmap.lookup(0); !ok {
		return nil
	}
	var out []fs.Extent
	for _, run := range jmap {
		first, end := max(run.logical, 1), min(run.logical+run.n, uint64(js.maxLen))
		if first >= end {
			continue
		}
		phys := run.physical + first - run.logical
		out = append(out, fs.Extent{Off: int64(phys) * f.blockSize, Len: int64(end-first) * f.blockSize})
	}
	return fs.Normalize(out, f.fsSize())
}

// walkLog calls fn for each copy of a filesystem block in the log, in log
// order, with the block's number (target) and a function reading the copy
// (valid until the next read). It visits every copy up to the end of the log:
// those of transactions without a commit block and those revoked too. It
// stops at the first block that does not continue the log, and after reading
// as many blocks as the journal has, so a damaged log cannot make it loop.
func (j *journalReader) walkLog(js *journalSuper, fn func(target uint64, copyBlock func() ([]byte, error)) error) error {
	be := binary.BigEndian
	var tags []journalTag
	pos, seq := js.start, js.sequence
	for steps := uint32(0); steps < js.maxLen; steps++ {
		b, err := j.block(pos)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if be.Uint32(b[0:]) != journalMagic || be.Uint32(b[8:]) != seq {
			return nil // the end of the log
		}
		switch be.Uint32(b[4:]) {
		case jbdDescriptor:
			// The tags, each naming the filesystem block whose copy is the
			// next block of the log.
			tags = js.descriptorTags(b, tags[:0])
			for _, t := range tags {
				pos = js.next(pos)
				if steps++; steps >= js.maxLen {
					return nil
				}
				at := pos
				err := fn(t.target, func() ([]byte, error) {
					b, err := j.block(at)
					if err == nil && t.escape {
						be.PutUint32(b, journalMagic)
					}
					return b, err
				})
				if err != nil {
					return err
				}
			}
		case jbdCommit:
			seq++
		case jbdRevoke:
		default:
			return nil
		}
		pos = js.next(pos)
	}
	return nil
}

// next returns the log block after p, wrapping from the end of the journal
// to s_first.
func (js *journalSuper) next(p uint32) uint32 {
	if p++; p >= js.maxLen {
		p = js.first
	}
	return p
}

// journalTag is a descriptor block's tag: the filesystem block whose copy is
// the next block of the log, and whether the copy's first 4 bytes, the magic
// number, were zeroed in the log (escaped).
type journalTag struct {
	target uint64
	escape bool
}

// descriptorTags appends the tags of descriptor block b to tags.
func (js *journalSuper) descriptorTags(b []byte, tags []journalTag) []journalTag {
	tagSize := 8 // t_blocknr, t_checksum, t_flags
	switch {
	case js.incompat&jbdIncompatCsumV3 != 0:
		tagSize = 16 // t_blocknr, t_flags (32 bits), t_blocknr_high, t_checksum
	case js.incompat&jbdIncompat64Bit != 0:
		tagSize = 12 // and t_blocknr_high
	}
	if js.incompat&jbdIncompatCsumV2 != 0 && tagSize != 16 {
		tagSize += 2
	}
	tail := 0 // the descriptor block's checksum
	if js.incompat&(jbdIncompatCsumV2|jbdIncompatCsumV3) != 0 {
		tail = 4
	}
	be := binary.BigEndian
	for off := 12; off+tagSize <= len(b)-tail; {
		t := b[off:]
		target := uint64(be.Uint32(t[0:]))
		flags := uint32(be.Uint16(t[6:]))
		if tagSize == 16 {
			flags = be.Uint32(t[4:])
		}
		if js.incompat&jbdIncompat64Bit != 0 {
			target |= uint64(be.Uint32(t[8:])) << 32
		}
		tags = append(tags, journalTag{target, flags&jbdFlagEscape != 0})
		off += tagSize
		if flags&jbdFlagSameUUID == 0 {
			off += 16
		}
		if flags&jbdFlagLastTag != 0 {
			break
		}
	}
	return tags
}

// journalReader reads blocks of the journal through its inode's block map.
type journalReader struct {
	f   *filesystem
	m   blockMap
	buf []byte
}

// block returns journal block n (valid until the next call).
func (j *journalReader) block(n uint32) ([]byte, error) {
	p, ok := j.m.lookup(uint64(n))
	if !ok {
		return nil, fmt.Errorf("block %d is not mapped", n)
	}
	if err := readFull(j.f.r, j.f.size, j.buf, int64(p)*j.f.blockSize); err != nil {
		return nil, fmt.Errorf("reading block %d: %w", n, err)
	}
	return j.buf, nil
}

// readSuper reads and checks the journal superblock.
func (j *journalReader) readSuper() (*journalSuper, error) {
	b, err := j.block(0)
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	js := &journalSuper{
		blockType: be.Uint32(b[0x04:]),
		blockSize: be.Uint32(b[0x0C:]),
		maxLen:    be.Uint32(b[0x10:]),
		first:     be.Uint32(b[0x14:]),
		sequence:  be.Uint32(b[0x18:]),
		start:     be.Uint32(b[0x1C:]),
	}
	if be.Uint32(b[0:]) != journalMagic || (js.blockType != jbdSuperblockV1 && js.blockType != jbdSuperblockV2) {
		return nil, fmt.Errorf("no journal superblock")
	}
	if js.blockType == jbdSuperblockV2 {
		js.incompat = be.Uint32(b[0x28:])
	}
	mapped := uint64(0)
	if n := len(j.m); n > 0 {
		mapped = j.m[n-1].logical + j.m[n-1].n
	}
	switch {
	case int64(js.blockSize) != j.f.blockSize:
		return nil, fmt.Errorf("journal block size %d in a filesystem of %d-byte blocks", js.blockSize, j.f.blockSize)
	case uint64(js.maxLen) > mapped || js.first == 0 || js.first >= js.maxLen:
		return nil, fmt.Errorf("journal of %d blocks, log from %d, in %d blocks", js.maxLen, js.first, mapped)
	case js.start != 0 && (js.start < js.first || js.start >= js.maxLen):
		return nil, fmt.Errorf("log start %d outside %d-%d", js.start, js.first, js.maxLen)
	}
	return js, nil
}
