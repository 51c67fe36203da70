package disk

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Table is a disk's partition table as read by ReadTable or made by Resize.
type Table struct {
	// Type is "gpt", "mbr" or "none" (no partition table: the whole disk is
	// one gap, e.g. a filesystem written straight onto the disk).
	Type string `json:"type"`
	// DiskID is the GPT disk GUID (lowercase) or the MBR disk signature as
	// "0x" and 8 hex digits, as sfdisk shows it.
	DiskID     string `json:"id,omitempty"`
	SectorSize int    `json:"sector_size"`
	// DiskSize is the size in bytes of the disk the table describes.
	DiskSize int64 `json:"disk_size"`
	// Partitions are sorted by Number. For an MBR, the extended partition is
	// listed too (Extended true), like sfdisk does.
	Partitions []Partition `json:"partitions"`
	// GPT is set when Type is "gpt".
	GPT *GPTInfo `json:"gpt,omitempty"`
	// Warnings say what was wrong but could be read around (a damaged primary
	// GPT header, a broken chain of logical partitions...).
	Warnings []string `json:"warnings,omitempty"`

	gpt *gptState
	mbr *mbrState
	// moveFrom and moveBy say how Resize moved bytes: those at moveFrom and
	// after moved by moveBy (see NewOffset).
	moveFrom, moveBy int64
}

// Partition is one entry of a partition table.
type Partition struct {
	// Number is the partition's number as the OS gives it: a GPT entry's index
	// plus one; MBR 1-4 for the primary slots, 5 and up for logical partitions
	// in the order of their chain.
	Number int `json:"number"`
	// Start and Size are in bytes.
	Start int64 `json:"start"`
	Size  int64 `json:"size"`
	// Type is the GPT type GUID in lowercase, or the MBR type byte as "0x83".
	Type     string `json:"type"`
	TypeName string `json:"type_name,omitempty"`
	// Name and UUID (the unique partition GUID, lowercase) and Attributes are
	// GPT's; Bootable is MBR's (the 0x80 flag).
	Name       string `json:"name,omitempty"`
	UUID       string `json:"uuid,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"`
	Bootable   bool   `json:"bootable,omitempty"`
	// Extended marks an MBR extended partition: a container for logical
	// partitions with no data of its own; imagers skip it.
	Extended bool `json:"extended,omitempty"`
}

// End returns the offset of the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// GPTInfo is what a GPT header says about where things are, in sectors.
type GPTInfo struct {
	FirstUsableLBA    uint64 `json:"first_usable_lba"`
	LastUsableLBA     uint64 `json:"last_usable_lba"`
	PrimaryHeaderLBA  uint64 `json:"primary_header_lba"`
	PrimaryEntriesLBA uint64 `json:"primary_entries_lba"`
	BackupHeaderLBA   uint64 `json:"backup_header_lba"`
	BackupEntriesLBA  uint64 `json:"backup_entries_lba"`
	EntryCount        uint32 `json:"entry_count"`
	EntrySize         uint32 `json:"entry_size"`
}

// entrySectors returns how many sectors an entry array takes.
func (g *GPTInfo) entrySectors(ss int) uint64 {
	n := uint64(g.EntryCount) * uint64(g.EntrySize)
	return (n + uint64(ss) - 1) / uint64(ss)
}

// Region is bytes to write at an offset of a disk.
type Region struct {
	Off  int64
	Data []byte
}

// Extent is a range of bytes of a disk.
type Extent struct {
	Off, Len int64
}

// TooSmallError is returned by Resize when the partitions do not fit.
type TooSmallError struct {
	Need, Have int64 // bytes
}

func (e *TooSmallError) Error() string {
	return fmt.Sprintf("target too small: needs %d bytes, has %d", e.Need, e.Have)
}

// ErrNoGPT is returned (wrapped) for a protective MBR with neither a valid
// primary nor a valid backup GPT.
var ErrNoGPT = errors.New("protective MBR but no valid GPT")

// ReadTable reads the partition table of a disk of size bytes through r.
// sectorSize is the disk's logical sector size; 0 means guess: 4096 when a
// GPT header is found there and not at 512, else 512.
//
// A GPT is recognised by its protective MBR (a 0xEE entry); both its header
// CRC and its entries CRC are checked, and a damaged primary is read from the
// backup, with a warning. A protective MBR with no valid GPT is an error
// (ErrNoGPT). Without a boot signature (or with an MBR whose entries are not
// plausible, as on a FAT boot sector) the table is "none". Partitions that
// reach past the end of the disk are an error.
func ReadTable(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	if sectorSize == 0 {
		sectorSize = guessSectorSize(r, size)
	}
	if sectorSize < 512 || sectorSize > 1<<16 || sectorSize&(sectorSize-1) != 0 {
		return nil, fmt.Errorf("bad sector size %d", sectorSize)
	}
	if size < int64(sectorSize) {
		return &Table{Type: "none", SectorSize: sectorSize, DiskSize: size}, nil
	}
	s0, err := readSectors(r, 0, sectorSize, 1)
	if err != nil {
		return nil, err
	}
	hasSig := s0[510] == 0x55 && s0[511] == 0xAA
	if hasSig && isProtective(s0) {
		t, err := readGPT(r, size, sectorSize, s0)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoGPT, err)
		}
		return t, nil
	}
	if hasSig {
		if t, ok, err := readMBR(r, size, sectorSize, s0); ok || err != nil {
			return t, err
		}
	}
	// No MBR: a GPT may still be there (some tools skip the protective MBR).
	if t, err := readGPT(r, size, sectorSize, s0); err == nil {
		t.Warnings = append(t.Warnings, "GPT without a protective MBR")
		return t, nil
	}
	return &Table{Type: "none", SectorSize: sectorSize, DiskSize: size}, nil
}

func guessSectorSize(r io.ReaderAt, size int64) int {
	for _, ss := range []int{512, 4096} {
		if b, err := readSectors(r, 1, ss, 1); err == nil && string(b[:8]) == gptSignature {
			return ss
		}
	}
	return 512
}

// readSectors reads n sectors from lba.
func readSectors(r io.ReaderAt, lba uint64, ss int, n uint64) ([]byte, error) {
	if n > maxEntryBytes/uint64(ss)+1 || lba > 1<<62/uint64(ss) {
		return nil, fmt.Errorf("read of %d sectors at LBA %d out of range", n, lba)
	}
	b := make([]byte, int(n)*ss)
	k, err := r.ReadAt(b, int64(lba)*int64(ss))
	if k == len(b) {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read LBA %d: %w", lba, err)
}

// clone copies t deeply enough that changing the copy's fields leaves t alone
// (raw sectors are shared: nothing writes them).
func (t *Table) clone() *Table {
	c := *t
	c.Partitions = append([]Partition(nil), t.Partitions...)
	c.Warnings = append([]string(nil), t.Warnings...)
	if t.GPT != nil {
		g := *t.GPT
		c.GPT = &g
	}
	if t.mbr != nil {
		m := *t.mbr
		m.ebrs = append([]ebr(nil), t.mbr.ebrs...)
		c.mbr = &m
	}
	return &c
}

// partition returns the partition numbered n, or nil.
func (t *Table) partition(n int) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Number == n {
			return &t.Partitions[i]
		}
	}
	return nil
}

func sortPartitions(ps []Partition) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Number < ps[j].Number })
}

// Encode returns the bytes that write t onto a disk of t.DiskSize bytes: the
// MBR and the EBRs of logical partitions; or the protective MBR, the GPT
// headers and both entry arrays, with every CRC recomputed. Bytes that hold no
// field of Table (boot code, reserved fields, padding) are kept as read, and
// an entry whose values did not change keeps its bytes (CHS included), so for
// a table read from a disk without warnings the regions equal the disk's bytes.
// Regions are sorted by offset and do not overlap. A "none" table encodes to
// nothing.
func (t *Table) Encode() ([]Region, error) {
	switch t.Type {
	case "gpt":
		return t.encodeGPT()
	case "mbr":
		return t.encodeMBR()
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("cannot encode a %q table", t.Type)
}
