package disk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
	"unicode/utf16"
)

const (
	gptSignature = "EFI PART"
	// maxEntryBytes bounds a GPT entry array (128 entries of 128 bytes is the
	// usual 16 KiB); larger ones are taken as damage.
	maxEntryBytes = 1 << 20
	gptNameOff    = 56
	gptNameLen    = 72 // 36 UTF-16 code units
)

// gptState is what Encode needs of a GPT beyond Table's fields: the sectors
// as read, so that bytes with no field are written back unchanged.
type gptState struct {
	pmbr      []byte // LBA 0 as read; nil when it held no MBR
	pmbrWhole bool   // its 0xEE entry covers the whole disk (and should keep doing so)
	header    []byte // the header sector used: the primary's, or the backup's if the primary was damaged
	backup    []byte // the backup header sector, nil if damaged
	entries   []byte // the entry array's sectors as read from the copy used
}

// gptHeader is a parsed GPT header.
type gptHeader struct {
	myLBA, altLBA           uint64
	firstUsable, lastUsable uint64
	disk                    [16]byte
	entriesLBA              uint64
	count, entrySize        uint32
	entriesCRC              uint32
}

func (h *gptHeader) entrySectors(ss int) uint64 {
	return (uint64(h.count)*uint64(h.entrySize) + uint64(ss) - 1) / uint64(ss)
}

// parseGPTHeader checks the header in sector sec, read from LBA lba of a disk
// of sectors sectors: signature, size, CRC, and that its areas make sense.
func parseGPTHeader(sec []byte, lba, sectors uint64) (*gptHeader, error) {
	le := binary.LittleEndian
	if string(sec[:8]) != gptSignature {
		return nil, fmt.Errorf("no GPT signature at LBA %d", lba)
	}
	hs := le.Uint32(sec[12:])
	if hs < 92 || int64(hs) > int64(len(sec)) {
		return nil, fmt.Errorf("GPT header at LBA %d: bad header size %d", lba, hs)
	}
	if got, want := headerCRC(sec), le.Uint32(sec[16:]); got != want {
		return nil, fmt.Errorf("GPT header at LBA %d: CRC32 %08x, expected %08x", lba, got, want)
	}
	h := &gptHeader{
		myLBA:       le.Uint64(sec[24:]),
		altLBA:      le.Uint64(sec[32:]),
		firstUsable: le.Uint64(sec[40:]),
		lastUsable:  le.Uint64(sec[48:]),
		entriesLBA:  le.Uint64(sec[72:]),
		count:       le.Uint32(sec[80:]),
		entrySize:   le.Uint32(sec[84:]),
		entriesCRC:  le.Uint32(sec[88:]),
	}
	copy(h.disk[:], sec[56:72])
	switch {
	case h.myLBA != lba:
		return nil, fmt.Errorf("GPT header at LBA %d says it is at LBA %d", lba, h.myLBA)
	case h.entrySize < 128 || h.entrySize%8 != 0 || h.count == 0 ||
		uint64(h.count)*uint64(h.entrySize) > maxEntryBytes:
		return nil, fmt.Errorf("GPT header at LBA %d: bad entry array (%d entries of %d bytes)", lba, h.count, h.entrySize)
	case h.firstUsable > h.lastUsable || h.lastUsable >= sectors:
		return nil, fmt.Errorf("GPT header at LBA %d: bad usable area %d-%d", lba, h.firstUsable, h.lastUsable)
	case lba >= h.firstUsable && lba <= h.lastUsable:
		return nil, fmt.Errorf("GPT header at LBA %d lies in the usable area", lba)
	}
	n := h.entrySectors(len(sec))
	if h.entriesLBA > sectors || n > sectors-h.entriesLBA ||
		(lba >= h.entriesLBA && lba < h.entriesLBA+n) ||
		(h.entriesLBA+n > h.firstUsable && h.entriesLBA <= h.lastUsable) {
		return nil, fmt.Errorf("GPT header at LBA %d: entry array at LBA %d is misplaced", lba, h.entriesLBA)
	}
	return h, nil
}

// headerCRC computes a header sector's CRC32 with its CRC field taken as zero.
func headerCRC(sec []byte) uint32 {
	hs := binary.LittleEndian.Uint32(sec[12:])
	b := append([]byte(nil), sec[:hs]...)
	clear(b[16:20])
	return crc32.ChecksumIEEE(b)
}

// readGPTCopy reads and checks the header at lba and its entry array.
func readGPTCopy(r io.ReaderAt, ss int, lba, sectors uint64) (h *gptHeader, sec, entries []byte, err error) {
	if sec, err = readSectors(r, lba, ss, 1); err != nil {
		return nil, nil, nil, err
	}
	if h, err = parseGPTHeader(sec, lba, sectors); err != nil {
		return nil, nil, nil, err
	}
	if entries, err = readSectors(r, h.entriesLBA, ss, h.entrySectors(ss)); err != nil {
		return nil, nil, nil, err
	}
	n := int(h.count) * int(h.entrySize)
	if got := crc32.ChecksumIEEE(entries[:n]); got != h.entriesCRC {
		return nil, nil, nil, fmt.Errorf("GPT entries at LBA %d: CRC32 %08x, expected %08x", h.entriesLBA, got, h.entriesCRC)
	}
	return h, sec, entries, nil
}

// readGPT reads the GPT of a disk whose LBA 0 is s0.
func readGPT(r io.ReaderAt, size int64, ss int, s0 []byte) (*Table, error) {
	sectors := uint64(size) / uint64(ss)
	if sectors < 4 {
		return nil, fmt.Errorf("disk of %d bytes too small for a GPT", size)
	}
	prim, psec, pent, perr := readGPTCopy(r, ss, 1, sectors)
	backLBA := sectors - 1
	if perr == nil && prim.altLBA < sectors && prim.altLBA > prim.lastUsable {
		backLBA = prim.altLBA
	}
	back, bsec, bent, berr := readGPTCopy(r, ss, backLBA, sectors)
	if perr != nil && berr != nil {
		return nil, fmt.Errorf("primary: %v; backup: %v", perr, berr)
	}
	t := &Table{Type: "gpt", SectorSize: ss, DiskSize: size}
	st := &gptState{}
	if s0[510] == 0x55 && s0[511] == 0xAA {
		st.pmbr = s0
		hybrid := false
		for _, e := range mbrEntries(s0) {
			switch {
			case e.typ == 0xEE:
				st.pmbrWhole = e.start == 1 && uint64(e.size) == min(sectors-1, 0xFFFFFFFF)
			case !e.empty():
				hybrid = true
			}
		}
		if hybrid {
			t.Warnings = append(t.Warnings, "hybrid MBR: its entries besides the GPT's are kept as they are, even when partitions move")
		}
	}
	h, entries := prim, pent
	st.header = psec
	switch {
	case perr != nil:
		h, entries, st.header = back, bent, bsec
		t.Warnings = append(t.Warnings, fmt.Sprintf("primary GPT damaged (%v); read the backup at LBA %d", perr, backLBA))
	case berr != nil:
		t.Warnings = append(t.Warnings, fmt.Sprintf("backup GPT damaged (%v)", berr))
	case prim.disk != back.disk || prim.entriesCRC != back.entriesCRC || prim.count != back.count ||
		prim.entrySize != back.entrySize || prim.firstUsable != back.firstUsable || prim.lastUsable != back.lastUsable:
		t.Warnings = append(t.Warnings, "primary and backup GPT differ; using the primary")
	}
	if berr == nil {
		st.backup = bsec
	}
	if backLBA != sectors-1 {
		t.Warnings = append(t.Warnings, fmt.Sprintf("backup GPT header at LBA %d, not at the last LBA %d", backLBA, sectors-1))
	}
	st.entries = entries
	n := h.entrySectors(ss)
	g := &GPTInfo{
		FirstUsableLBA:    h.firstUsable,
		LastUsableLBA:     h.lastUsable,
		PrimaryHeaderLBA:  1,
		PrimaryEntriesLBA: 2,
		BackupHeaderLBA:   backLBA,
		BackupEntriesLBA:  backLBA - n,
		EntryCount:        h.count,
		EntrySize:         h.entrySize,
	}
	if perr == nil {
		g.PrimaryEntriesLBA = prim.entriesLBA
	}
	if berr == nil {
		g.BackupEntriesLBA = back.entriesLBA
	}
	if g.PrimaryEntriesLBA+n > g.FirstUsableLBA || backLBA < n || g.BackupEntriesLBA <= g.LastUsableLBA {
		return nil, fmt.Errorf("no room for both GPT copies around usable area %d-%d", g.FirstUsableLBA, g.LastUsableLBA)
	}
	t.GPT, t.gpt, t.DiskID = g, st, guidString(h.disk[:])

	le := binary.LittleEndian
	for i := 0; i < int(h.count); i++ {
		e := entries[i*int(h.entrySize) : (i+1)*int(h.entrySize)]
		if allZero(e[:16]) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if first > last || last >= sectors {
			return nil, fmt.Errorf("GPT entry %d: bad LBAs %d-%d on a disk of %d sectors", i+1, first, last, sectors)
		}
		if first < h.firstUsable || last > h.lastUsable {
			t.Warnings = append(t.Warnings, fmt.Sprintf("partition %d lies outside the usable area", i+1))
		}
		typ := guidString(e[:16])
		t.Partitions = append(t.Partitions, Partition{
			Number:     i + 1,
			Start:      int64(first) * int64(ss),
			Size:       int64(last-first+1) * int64(ss),
			Type:       typ,
			TypeName:   gptTypeNames[typ],
			Name:       decodeName(e[gptNameOff : gptNameOff+gptNameLen]),
			UUID:       guidString(e[16:32]),
			Attributes: le.Uint64(e[48:]),
		})
	}
	return t, nil
}

func (t *Table) encodeGPT() ([]Region, error) {
	g, st, ss := t.GPT, t.gpt, t.SectorSize
	if g == nil || st == nil {
		return nil, fmt.Errorf("GPT table not read by ReadTable")
	}
	sectors := uint64(t.DiskSize) / uint64(ss)
	if g.BackupHeaderLBA >= sectors {
		return nil, fmt.Errorf("backup GPT header at LBA %d beyond the disk's %d sectors", g.BackupHeaderLBA, sectors)
	}
	disk, err := parseGUID(t.DiskID)
	if err != nil {
		return nil, fmt.Errorf("disk GUID: %w", err)
	}
	entries, err := t.gptEntries()
	if err != nil {
		return nil, err
	}
	crc := crc32.ChecksumIEEE(entries[:int(g.EntryCount)*int(g.EntrySize)])
	header := func(raw []byte, my, alt, entriesLBA uint64) []byte {
		h := append([]byte(nil), raw...)
		le := binary.LittleEndian
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], g.FirstUsableLBA)
		le.PutUint64(h[48:], g.LastUsableLBA)
		copy(h[56:72], disk)
		le.PutUint64(h[72:], entriesLBA)
		le.PutUint32(h[80:], g.EntryCount)
		le.PutUint32(h[84:], g.EntrySize)
		le.PutUint32(h[88:], crc)
		le.PutUint32(h[16:], headerCRC(h))
		return h
	}
	backRaw := st.backup
	if backRaw == nil {
		backRaw = st.header
	}
	regions := []Region{
		{0, t.protectiveMBR(sectors)},
		{int64(ss), header(st.header, 1, g.BackupHeaderLBA, g.PrimaryEntriesLBA)},
		{int64(g.PrimaryEntriesLBA) * int64(ss), entries},
		{int64(g.BackupEntriesLBA) * int64(ss), entries},
		{int64(g.BackupHeaderLBA) * int64(ss), header(backRaw, g.BackupHeaderLBA, 1, g.BackupEntriesLBA)},
	}
	if err := checkRegions(regions, t.DiskSize); err != nil {
		return nil, err
	}
	return regions, nil
}

// gptEntries returns the entry array's sectors with t.Partitions written in.
func (t *Table) gptEntries() ([]byte, error) {
	g, ss := t.GPT, int64(t.SectorSize)
	buf := append([]byte(nil), t.gpt.entries...)
	if uint64(len(buf)) < g.entrySectors(int(ss))*uint64(ss) || g.EntrySize != t.gpt.entrySize() {
		return nil, fmt.Errorf("GPT entry array changed shape")
	}
	es := int(g.EntrySize)
	byNum := map[int]*Partition{}
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Number < 1 || p.Number > int(g.EntryCount) || byNum[p.Number] != nil {
			return nil, fmt.Errorf("partition number %d does not fit a GPT of %d entries", p.Number, g.EntryCount)
		}
		byNum[p.Number] = p
	}
	le := binary.LittleEndian
	for i := 0; i < int(g.EntryCount); i++ {
		e := buf[i*es : (i+1)*es]
		p := byNum[i+1]
		if p == nil {
			if !allZero(e[:16]) {
				clear(e)
			}
			continue
		}
		if p.Start%ss != 0 || p.Size%ss != 0 || p.Start < 0 || p.Size <= 0 {
			return nil, fmt.Errorf("partition %d: start %d and size %d are not whole sectors", p.Number, p.Start, p.Size)
		}
		typ, err := parseGUID(p.Type)
		if err != nil {
			return nil, fmt.Errorf("partition %d type: %w", p.Number, err)
		}
		if allZero(typ) {
			return nil, fmt.Errorf("partition %d: zero type GUID", p.Number)
		}
		uuid, err := parseGUID(p.UUID)
		if err != nil {
			return nil, fmt.Errorf("partition %d UUID: %w", p.Number, err)
		}
		copy(e[0:16], typ)
		copy(e[16:32], uuid)
		le.PutUint64(e[32:], uint64(p.Start/ss))
		le.PutUint64(e[40:], uint64(p.End()/ss-1))
		le.PutUint64(e[48:], p.Attributes)
		name := e[gptNameOff : gptNameOff+gptNameLen]
		if decodeName(name) != p.Name {
			u := utf16.Encode([]rune(p.Name))
			if len(u) > gptNameLen/2 {
				return nil, fmt.Errorf("partition %d: name longer than 36 UTF-16 units", p.Number)
			}
			clear(name)
			for j, c := range u {
				le.PutUint16(name[2*j:], c)
			}
		}
	}
	return buf, nil
}

// entrySize is the entry size of the header the entries were read with.
func (st *gptState) entrySize() uint32 { return binary.LittleEndian.Uint32(st.header[84:]) }

// protectiveMBR returns LBA 0 for a GPT disk of sectors sectors: the sector
// as read with a whole-disk 0xEE entry fitted to the new size, or a new one.
func (t *Table) protectiveMBR(sectors uint64) []byte {
	size := uint32(min(sectors-1, 0xFFFFFFFF))
	st := t.gpt
	if st.pmbr == nil {
		b := make([]byte, t.SectorSize)
		putMBREntry(b[446:], mbrEntry{typ: 0xEE, start: 1, size: size})
		b[510], b[511] = 0x55, 0xAA
		return b
	}
	b := append([]byte(nil), st.pmbr...)
	if st.pmbrWhole {
		for i := 0; i < 4; i++ {
			raw := b[446+16*i:]
			if e := getMBREntry(raw); e.typ == 0xEE {
				e.size = size
				putMBREntry(raw, e)
			}
		}
	}
	return b
}

// checkRegions checks that regions lie on a disk of size bytes without
// overlapping, and sorts them.
func checkRegions(rs []Region, size int64) error {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	for i, r := range rs {
		if r.Off < 0 || r.Off+int64(len(r.Data)) > size {
			return fmt.Errorf("table bytes at %d-%d lie outside the disk of %d bytes", r.Off, r.Off+int64(len(r.Data)), size)
		}
		if i > 0 && rs[i-1].Off+int64(len(rs[i-1].Data)) > r.Off {
			return fmt.Errorf("table structures overlap at byte %d", r.Off)
		}
	}
	return nil
}

// guidString formats a GUID stored in GPT's mixed-endian layout.
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

// parseGUID is guidString's inverse; it accepts either case.
func parseGUID(s string) ([]byte, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("bad GUID %q", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return nil, fmt.Errorf("bad GUID %q", s)
	}
	// The first three fields are stored little-endian.
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b, nil
}

// decodeName decodes a GPT partition name: UTF-16LE up to the first NUL.
func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}
