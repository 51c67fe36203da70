package ntfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// Attribute types used here.
const (
	attrStandardInfo  = 0x10
	attrAttributeList = 0x20
	attrFileName      = 0x30
	attrVolumeName    = 0x60
	attrData          = 0x80
	attrIndexRoot     = 0x90
	attrIndexAlloc    = 0xA0
	attrReparsePoint  = 0xC0
	attrEnd           = 0xFFFFFFFF
)

// Attribute flags.
const (
	flagCompressed = 0x0001
	flagEncrypted  = 0x4000
	flagSparse     = 0x8000
)

// Record flags.
const (
	recordInUse = 0x0001
	recordIsDir = 0x0002 // the record has a file name index
)

// fixupStride is the size of the blocks the update sequence protects, 512
// bytes whatever the sector size.
const fixupStride = 512

// A record is one MFT record (a FILE record) after its update sequence has
// been applied: the header fields used here and its attributes in order.
type record struct {
	Flags uint16
	// Seq is the record's sequence number, counting its reuses; references
	// to the record carry it in their top 16 bits.
	Seq uint16
	// Base is the MFT reference of the base record if this is an extension
	// record (holding attributes that did not fit in the base), else 0.
	Base  uint64
	Attrs []attribute
}

// An attribute is one attribute of a record. A resident attribute's Value is
// its data; a non-resident one's data is on clusters that Runs map, Runs
// covering virtual clusters LowVCN to HighVCN of it (all of them unless the
// attribute is split over records by an attribute list).
type attribute struct {
	Type        uint32
	Name        string
	NonResident bool
	Flags       uint16
	ID          uint16

	Value []byte // resident only

	LowVCN, HighVCN               int64 // non-resident only
	AllocSize, DataSize, InitSize int64
	Runs                          []run
	// CompUnit is the log2 of the clusters in a compression unit of a
	// compressed attribute (4 in practice).
	CompUnit uint8
}

// parseRecord checks an MFT record, applies its update sequence to b (in
// place) and decodes its attributes. The values of resident attributes point
// into b.
//
// The header: "FILE", the update sequence offset (u16 at 4) and count (u16 at
// 6), the sequence number (u16 at 16), the attributes' offset (u16 at 20),
// flags (u16 at 22), bytes in use (u32 at 24) and allocated (u32 at 28), the
// base record reference (u64 at 32). The update sequence is a u16 number, then
// one u16 per 512-byte block: the last two bytes of each block hold the
// number on disk (so a torn write shows) and their true value is in the array.
func parseRecord(b []byte) (*record, error) {
	if len(b) < 64 || len(b)%fixupStride != 0 {
		return nil, fmt.Errorf("ntfs: MFT record of %d bytes", len(b))
	}
	if string(b[:4]) != "FILE" {
		return nil, errors.New("ntfs: MFT record without FILE signature")
	}
	le16 := binary.LittleEndian.Uint16
	le32 := binary.LittleEndian.Uint32
	usaEnd, err := applyFixups(b, 42, "MFT record")
	if err != nil {
		return nil, err
	}

	rec := &record{Flags: le16(b[22:]), Seq: le16(b[16:]), Base: binary.LittleEndian.Uint64(b[32:])}
	used := int(le32(b[24:]))
	if used > len(b) || used < 0 {
		return nil, fmt.Errorf("ntfs: MFT record: %d bytes in use of %d", used, len(b))
	}
	off := int(le16(b[20:]))
	if off < usaEnd || off%8 != 0 {
		return nil, fmt.Errorf("ntfs: MFT record: attributes at %d", off)
	}
	for {
		if off+4 > used {
			return nil, errors.New("ntfs: MFT record: no end of attributes")
		}
		if le32(b[off:]) == attrEnd {
			return rec, nil
		}
		if off+16 > used {
			return nil, fmt.Errorf("ntfs: MFT record: attribute header at %d past the end", off)
		}
		n := int(le32(b[off+4:]))
		if n < 16 || n%8 != 0 || n > used-off {
			return nil, fmt.Errorf("ntfs: MFT record: attribute at %d of %d bytes", off, n)
		}
		a, err := parseAttribute(b[off : off+n])
		if err != nil {
			return nil, err
		}
		rec.Attrs = append(rec.Attrs, a)
		off += n
	}
}

// applyFixups checks the update sequence of b, a record of whole 512-byte
// blocks whose header (at least minOff bytes) holds the sequence's offset
// (u16 at 4) and count (u16 at 6), and puts each block's last two bytes back
// in place. It returns the offset where the sequence ends. kind names the
// record in errors.
func applyFixups(b []byte, minOff int, kind string) (int, error) {
	usaOff, usaCount := int(binary.LittleEndian.Uint16(b[4:])), int(binary.LittleEndian.Uint16(b[6:]))
	blocks := len(b) / fixupStride
	if usaCount != blocks+1 || usaOff < minOff || usaOff%2 != 0 || usaOff+2*usaCount > fixupStride-2 {
		return 0, fmt.Errorf("ntfs: %s: update sequence of %d at %d", kind, usaCount, usaOff)
	}
	usa := b[usaOff : usaOff+2*usaCount]
	for i := range blocks {
		end := (i+1)*fixupStride - 2
		if b[end] != usa[0] || b[end+1] != usa[1] {
			return 0, fmt.Errorf("ntfs: %s: update sequence mismatch in block %d (torn write)", kind, i)
		}
		b[end], b[end+1] = usa[2*i+2], usa[2*i+3]
	}
	return usaOff + 2*usaCount, nil
}

// parseAttribute decodes one attribute, b being exactly its bytes.
//
// Common header: type (u32 at 0), length (u32 at 4), non-resident (u8 at 8),
// name length in UTF-16 units (u8 at 9) and offset (u16 at 10), flags (u16 at
// 12), id (u16 at 14). Resident: value length (u32 at 16) and offset (u16 at
// 20). Non-resident: lowest and highest VCN (u64 at 16, 24), runlist offset
// (u16 at 32), compression unit (u16 at 34), allocated, data and initialized
// sizes (u64 at 40, 48, 56).
func parseAttribute(b []byte) (attribute, error) {
	le16 := binary.LittleEndian.Uint16
	le32 := binary.LittleEndian.Uint32
	le64 := func(off int) int64 { return int64(binary.LittleEndian.Uint64(b[off:])) }
	a := attribute{
		Type:        le32(b),
		NonResident: b[8] != 0,
		Flags:       le16(b[12:]),
		ID:          le16(b[14:]),
	}
	if nameLen := int(b[9]); nameLen > 0 {
		nameOff := int(le16(b[10:]))
		if nameOff+2*nameLen > len(b) {
			return a, fmt.Errorf("ntfs: attribute %#x: name past its end", a.Type)
		}
		a.Name = decodeUTF16(b[nameOff : nameOff+2*nameLen])
	}
	if !a.NonResident {
		if len(b) < 24 {
			return a, fmt.Errorf("ntfs: attribute %#x: resident header of %d bytes", a.Type, len(b))
		}
		valLen, valOff := int64(le32(b[16:])), int64(le16(b[20:]))
		if valOff+valLen > int64(len(b)) {
			return a, fmt.Errorf("ntfs: attribute %#x: value past its end", a.Type)
		}
		a.Value = b[valOff : valOff+valLen]
		return a, nil
	}
	if len(b) < 64 {
		return a, fmt.Errorf("ntfs: attribute %#x: non-resident header of %d bytes", a.Type, len(b))
	}
	a.LowVCN, a.HighVCN = le64(16), le64(24)
	a.CompUnit = b[34]
	a.AllocSize, a.DataSize, a.InitSize = le64(40), le64(48), le64(56)
	if a.LowVCN < 0 || a.LowVCN >= maxClusters || a.HighVCN < a.LowVCN-1 || a.HighVCN >= maxClusters {
		return a, fmt.Errorf("ntfs: attribute %#x: VCNs %d-%d", a.Type, a.LowVCN, a.HighVCN)
	}
	if a.AllocSize < 0 || a.DataSize < 0 || a.InitSize < 0 {
		return a, fmt.Errorf("ntfs: attribute %#x: negative size", a.Type)
	}
	runOff := int(le16(b[32:]))
	if runOff < 64 || runOff > len(b) {
		return a, fmt.Errorf("ntfs: attribute %#x: runlist at %d", a.Type, runOff)
	}
	runs, err := decodeRunlist(b[runOff:], a.LowVCN)
	if err != nil {
		return a, fmt.Errorf("attribute %#x: %w", a.Type, err)
	}
	a.Runs = runs
	return a, nil
}

// find returns the first attribute of type typ named name, or nil.
func (r *record) find(typ uint32, name string) *attribute {
	for i := range r.Attrs {
		if r.Attrs[i].Type == typ && r.Attrs[i].Name == name {
			return &r.Attrs[i]
		}
	}
	return nil
}

// An attrListEntry is one entry of an $ATTRIBUTE_LIST: where (in which MFT
// record) a piece of an attribute starting at virtual cluster LowVCN lives.
type attrListEntry struct {
	Type   uint32
	Name   string
	LowVCN int64
	Record int64 // MFT record number (the reference's low 48 bits)
	ID     uint16
}

// parseAttrList decodes the value of an $ATTRIBUTE_LIST attribute: entries of
// type (u32 at 0), length (u16 at 4), name length (u8 at 6) and offset (u8 at
// 7), lowest VCN (u64 at 8), MFT reference (u64 at 16), attribute id (u16 at
// 24).
func parseAttrList(b []byte) ([]attrListEntry, error) {
	var list []attrListEntry
	for len(b) > 0 {
		if len(b) < 26 {
			return nil, errors.New("ntfs: attribute list: truncated entry")
		}
		n := int(binary.LittleEndian.Uint16(b[4:]))
		if n < 26 || n > len(b) {
			return nil, fmt.Errorf("ntfs: attribute list: entry of %d bytes", n)
		}
		e := attrListEntry{
			Type:   binary.LittleEndian.Uint32(b),
			LowVCN: int64(binary.LittleEndian.Uint64(b[8:])),
			Record: int64(binary.LittleEndian.Uint64(b[16:]) & (1<<48 - 1)),
			ID:     binary.LittleEndian.Uint16(b[24:]),
		}
		if nameLen, nameOff := int(b[6]), int(b[7]); nameLen > 0 {
			if nameOff+2*nameLen > n {
				return nil, errors.New("ntfs: attribute list: name past its entry")
			}
			e.Name = decodeUTF16(b[nameOff : nameOff+2*nameLen])
		}
		list = append(list, e)
		b = b[n:]
	}
	return list, nil
}

// decodeUTF16 decodes little-endian UTF-16 (an odd last byte is dropped);
// unpaired surrogates become U+FFFD.
func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
