package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// maxLogical bounds the chain of logical partitions (Linux numbers at most
// 256 partitions a disk).
const maxLogical = 256

// mbrState is what Encode needs of an MBR beyond Table's fields.
type mbrState struct {
	sector []byte // LBA 0 as read
	ebrs   []ebr  // the chain of extended boot records, in order
}

// ebr is one extended boot record of the chain of logical partitions.
type ebr struct {
	lba    uint64 // where it is
	raw    []byte // its sector as read
	number int    // the logical partition it describes, 0 if none
	// dataSlot and linkSlot are the entries (0-3) holding the logical
	// partition and the link to the next EBR; -1 when there is none.
	dataSlot, linkSlot int
	// linkExtra is how many sectors the link's size says more than the usual
	// (from the next EBR to the end of its logical partition), kept on encode.
	linkExtra int64
}

// mbrEntry is one 16-byte partition entry, without its CHS fields.
type mbrEntry struct {
	boot        byte
	typ         byte
	start, size uint32 // sectors
}

func (e mbrEntry) empty() bool { return e.typ == 0 || e.size == 0 }

func getMBREntry(b []byte) mbrEntry {
	le := binary.LittleEndian
	return mbrEntry{boot: b[0], typ: b[4], start: le.Uint32(b[8:]), size: le.Uint32(b[12:])}
}

// mbrEntries returns the four entries of an MBR or EBR sector.
func mbrEntries(sec []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		es[i] = getMBREntry(sec[446+16*i:])
	}
	return es
}

// putMBREntry writes e into the 16 bytes at b, unless they already say the
// same (so CHS fields as read are kept). CHS is computed for 255 heads and 63
// sectors a track, as fdisk and sgdisk do, saturating at cylinder 1023.
func putMBREntry(b []byte, e mbrEntry) {
	old := getMBREntry(b)
	if (old.boot == 0x80) == (e.boot == 0x80) {
		e.boot = old.boot // only 0x80 means bootable; keep other values as they are
	}
	if old == e || old.empty() && e.empty() {
		return
	}
	clear(b[:16])
	if e.empty() {
		return
	}
	b[0], b[4] = e.boot, e.typ
	putCHS(b[1:4], uint64(e.start))
	putCHS(b[5:8], uint64(e.start)+uint64(e.size)-1)
	binary.LittleEndian.PutUint32(b[8:], e.start)
	binary.LittleEndian.PutUint32(b[12:], e.size)
}

func putCHS(b []byte, lba uint64) {
	const heads, secs = 255, 63
	lba = min(lba, 1024*heads*secs-1)
	c := lba / (heads * secs)
	b[0] = byte(lba / secs % heads)
	b[1] = byte(lba%secs+1) | byte(c>>8)<<6
	b[2] = byte(c)
}

func countEmpty(es [4]mbrEntry) int {
	n := 0
	for _, e := range es {
		if e.empty() {
			n++
		}
	}
	return n
}

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0F || typ == 0x85 }

func isProtective(s0 []byte) bool {
	for _, e := range mbrEntries(s0) {
		if e.typ == 0xEE {
			return true
		}
	}
	return false
}

// looksLikeBootSector reports whether LBA 0 has the marks of a filesystem's
// boot sector (a disk formatted without a partition table).
func looksLikeBootSector(s0 []byte) bool {
	switch {
	case string(s0[3:11]) == "NTFS    ", string(s0[3:11]) == "EXFAT   ":
		return true
	case string(s0[54:59]) == "FAT12", string(s0[54:59]) == "FAT16", string(s0[82:87]) == "FAT32":
		return true
	}
	return false
}

// readMBR reads an MBR table whose LBA 0 is s0 (with its 0x55AA signature).
// ok is false when s0 is no partition table.
func readMBR(r io.ReaderAt, size int64, ss int, s0 []byte) (t *Table, ok bool, err error) {
	es := mbrEntries(s0)
	for _, e := range es {
		if e.boot != 0 && e.boot != 0x80 {
			return nil, false, nil
		}
	}
	if looksLikeBootSector(s0) {
		// Unless its entries make sense (an MBR may keep an old BPB).
		fits := 0
		for _, e := range es {
			if !e.empty() && e.start > 0 && int64(uint64(e.start)+uint64(e.size))*int64(ss) <= size {
				fits++
			}
		}
		if fits == 0 || fits < len(es)-countEmpty(es) {
			return nil, false, nil
		}
	}
	t = &Table{
		Type:       "mbr",
		DiskID:     fmt.Sprintf("0x%08x", binary.LittleEndian.Uint32(s0[440:])),
		SectorSize: ss,
		DiskSize:   size,
		mbr:        &mbrState{sector: s0},
	}
	var ext *Partition
	for i, e := range es {
		if e.empty() {
			continue
		}
		p := mbrPartition(e, i+1, 0, ss)
		if p.End() > size {
			return nil, true, fmt.Errorf("partition %d ends at byte %d, beyond the disk's %d", p.Number, p.End(), size)
		}
		t.Partitions = append(t.Partitions, p)
		if p.Extended {
			if ext != nil {
				t.Warnings = append(t.Warnings, fmt.Sprintf("more than one extended partition; ignoring partition %d's", p.Number))
				continue
			}
			ext = &p
		}
	}
	if ext != nil {
		logical, ebrs, warns := readEBRChain(r, ss, *ext)
		for i := 0; i+1 < len(ebrs); i++ {
			link := getMBREntry(ebrs[i].raw[446+16*ebrs[i].linkSlot:])
			ebrs[i].linkExtra = int64(link.size) - int64(linkEnd(ebrs[i+1], logical, ss)-ebrs[i+1].lba)
		}
		t.Partitions = append(t.Partitions, logical...)
		t.mbr.ebrs = ebrs
		t.Warnings = append(t.Warnings, warns...)
	}
	sortPartitions(t.Partitions)
	return t, true, nil
}

func mbrPartition(e mbrEntry, number int, base uint64, ss int) Partition {
	typ := fmt.Sprintf("0x%02x", e.typ)
	return Partition{
		Number:   number,
		Start:    int64(base+uint64(e.start)) * int64(ss),
		Size:     int64(e.size) * int64(ss),
		Type:     typ,
		TypeName: mbrTypeNames[e.typ],
		Bootable: e.boot == 0x80,
		Extended: isExtended(e.typ),
	}
}

// readEBRChain follows the chain of EBRs of the extended partition ext. The
// chain ends at an EBR without a link; a link that leaves the extended
// partition, points back to an EBR already read, or leads to an unreadable
// sector or one without a signature ends it too, with a warning. Logical
// partitions that do not lie inside ext after their EBR are left out, with a
// warning.
func readEBRChain(r io.ReaderAt, ss int, ext Partition) (logical []Partition, ebrs []ebr, warns []string) {
	extLBA, extEnd := uint64(ext.Start)/uint64(ss), uint64(ext.End())/uint64(ss)
	seen := map[uint64]bool{}
	next := 5
	for lba := extLBA; ; {
		switch {
		case seen[lba]:
			return logical, ebrs, append(warns, fmt.Sprintf("chain of logical partitions loops back to LBA %d", lba))
		case lba < extLBA || lba >= extEnd || lba == 0: // LBA 0 is the MBR
			return logical, ebrs, append(warns, fmt.Sprintf("EBR at LBA %d lies outside the extended partition", lba))
		case len(ebrs) == maxLogical:
			return logical, ebrs, append(warns, fmt.Sprintf("more than %d logical partitions", maxLogical))
		}
		seen[lba] = true
		sec, err := readSectors(r, lba, ss, 1)
		if err != nil {
			return logical, ebrs, append(warns, err.Error())
		}
		if sec[510] != 0x55 || sec[511] != 0xAA {
			if lba != extLBA || !allZero(sec) { // an empty extended partition may be all zeros
				warns = append(warns, fmt.Sprintf("EBR at LBA %d has no signature", lba))
			}
			return logical, ebrs, warns
		}
		b := ebr{lba: lba, raw: sec, dataSlot: -1, linkSlot: -1}
		for i, e := range mbrEntries(sec) {
			switch {
			case e.empty():
			case isExtended(e.typ) && b.linkSlot < 0:
				b.linkSlot = i
			case !isExtended(e.typ) && b.dataSlot < 0:
				p := mbrPartition(e, next, lba, ss)
				if e.start == 0 || uint64(p.End()) > extEnd*uint64(ss) {
					warns = append(warns, fmt.Sprintf("logical partition in EBR at LBA %d lies outside the extended partition", lba))
					continue
				}
				b.dataSlot, b.number = i, next
				logical = append(logical, p)
				next++
			}
		}
		ebrs = append(ebrs, b)
		if b.linkSlot < 0 {
			return logical, ebrs, warns
		}
		lba = extLBA + uint64(getMBREntry(sec[446+16*b.linkSlot:]).start)
	}
}

// linkEnd returns the LBA after the logical partition of EBR b (or after b,
// if it has none), which a link to b usually reaches.
func linkEnd(b ebr, parts []Partition, ss int) uint64 {
	for _, p := range parts {
		if b.number != 0 && p.Number == b.number {
			return uint64(p.End()) / uint64(ss)
		}
	}
	return b.lba + 1
}

func (t *Table) encodeMBR() ([]Region, error) {
	m, ss := t.mbr, int64(t.SectorSize)
	if m == nil {
		return nil, fmt.Errorf("MBR table not read by ReadTable")
	}
	logical := map[int]bool{}
	for _, b := range m.ebrs {
		if b.number != 0 {
			logical[b.number] = true
		}
	}
	var ext *Partition
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Number < 1 || p.Number > 4 && !logical[p.Number] {
			return nil, fmt.Errorf("partition %d: no slot for it in this MBR", p.Number)
		}
		if p.Extended && p.Number <= 4 && ext == nil {
			ext = p
		}
	}
	entry := func(p *Partition, base uint64) (mbrEntry, error) {
		if p == nil {
			return mbrEntry{}, nil
		}
		typ, err := strconv.ParseUint(p.Type, 0, 8)
		if err != nil || typ == 0 {
			return mbrEntry{}, fmt.Errorf("partition %d: bad MBR type %q", p.Number, p.Type)
		}
		if p.Start%ss != 0 || p.Size%ss != 0 || p.Start < 0 || p.Size <= 0 || uint64(p.Start/ss) < base {
			return mbrEntry{}, fmt.Errorf("partition %d: bad start %d or size %d", p.Number, p.Start, p.Size)
		}
		start, size := uint64(p.Start/ss)-base, uint64(p.Size/ss)
		if start > 0xFFFFFFFF || size > 0xFFFFFFFF || uint64(p.End()/ss) > 1<<32 {
			return mbrEntry{}, fmt.Errorf("partition %d lies beyond the MBR limit of 2^32 sectors", p.Number)
		}
		e := mbrEntry{typ: byte(typ), start: uint32(start), size: uint32(size)}
		if p.Bootable {
			e.boot = 0x80
		}
		return e, nil
	}

	sec := append([]byte(nil), m.sector...)
	for slot := 0; slot < 4; slot++ {
		e, err := entry(t.partition(slot+1), 0)
		if err != nil {
			return nil, err
		}
		putMBREntry(sec[446+16*slot:], e)
	}
	id, err := strconv.ParseUint(t.DiskID, 0, 32)
	if err != nil {
		return nil, fmt.Errorf("bad MBR disk signature %q", t.DiskID)
	}
	binary.LittleEndian.PutUint32(sec[440:], uint32(id))
	regions := []Region{{0, sec}}

	if len(m.ebrs) > 0 && ext == nil {
		return nil, fmt.Errorf("logical partitions without an extended partition")
	}
	for i, b := range m.ebrs {
		sec := append([]byte(nil), b.raw...)
		if b.dataSlot >= 0 {
			e, err := entry(t.partition(b.number), b.lba)
			if err != nil {
				return nil, err
			}
			putMBREntry(sec[446+16*b.dataSlot:], e)
		}
		if i+1 < len(m.ebrs) {
			nb := m.ebrs[i+1]
			end := linkEnd(nb, t.Partitions, int(ss))
			extLBA := uint64(ext.Start / ss)
			if nb.lba < extLBA || end < nb.lba || nb.lba-extLBA > 0xFFFFFFFF || end-nb.lba > 0xFFFFFFFF {
				return nil, fmt.Errorf("EBR at LBA %d lies outside the extended partition", nb.lba)
			}
			size := int64(end - nb.lba)
			if s := size + b.linkExtra; s > 0 && s <= 0xFFFFFFFF {
				size = s
			}
			slot := b.linkSlot // set: the chain went on through it
			link := mbrEntry{typ: 0x05, start: uint32(nb.lba - extLBA), size: uint32(size)}
			if old := getMBREntry(sec[446+16*slot:]); isExtended(old.typ) {
				link.typ, link.boot = old.typ, old.boot
			}
			putMBREntry(sec[446+16*slot:], link)
		}
		regions = append(regions, Region{int64(b.lba) * ss, sec})
	}
	if err := checkRegions(regions, t.DiskSize); err != nil {
		return nil, err
	}
	return regions, nil
}
