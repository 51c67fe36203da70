// Package fat reads FAT12, FAT16 and FAT32 filesystems: which bytes they use
// (Probe, here) and their files (Open, in reader.go).
//
// A FAT volume is, in order: the reserved sectors (the boot sector first; on
// FAT32 also the FSInfo sector and the backup boot sector), NumFATs copies of
// the file allocation table, on FAT12/16 the fixed root directory, then the
// data area of clusters numbered from 2. Each cluster has one FAT entry (12, 16
// or 28 bits); 0 means free. The type comes from the number of clusters, as
// Microsoft's specification says (fewer than 4085: FAT12, fewer than 65525:
// FAT16, else FAT32), never from the type string in the boot sector.
//
// Used is everything before the data area plus every cluster that some FAT copy
// marks neither free nor bad. Taking the union of the copies keeps data that
// either copy refers to when they disagree (a damaged or unmirrored FAT); a
// bad cluster holds no data, and reading it from a failing disk only fails.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"cairn/internal/fs"
)

const (
	maxFAT12 = 4084       // clusters; more is FAT16
	maxFAT16 = 65524      // clusters; more is FAT32
	maxFAT32 = 0x0FFFFFF5 // clusters numbered 2..0x0FFFFFF6
)

// errCorrupt is wrapped by every error about a FAT volume that is recognised but
// inconsistent (as opposed to fs.ErrUnknown: not FAT at all).
var errCorrupt = errors.New("fat: corrupt filesystem")

// volume is the geometry of a FAT volume, from its boot sector.
type volume struct {
	typ            string // "fat12", "fat16", "fat32"
	bits           int    // FAT entry width: 12, 16 or 32
	sectorSize     int64
	clusterSize    int64
	reservedSecs   int64
	numFATs        int64
	fatSecs        int64 // sectors per FAT copy
	rootEntries    int64 // FAT12/16 root directory entries
	totalSecs      int64
	clusters       int64 // data clusters, numbered 2..clusters+1
	rootCluster    uint32
	fat32Layout    bool // the boot sector has FAT32's extended BPB
	serial         []byte
	bootLabel      []byte
	dataStart      int64 // byte offset of cluster 2
	rootDirStart   int64 // byte offset of the FAT12/16 root directory
	rootDirSectors int64
}

// Probe reads the FAT volume on r, a partition of size bytes. It returns an
// error matching fs.ErrUnknown if r holds no FAT filesystem (exFAT included),
// and another error if it holds one larger than its partition (truncated) or
// r cannot be read. A FAT too short for the clusters is no error: as in
// Linux, only the clusters it has entries for exist.
func Probe(r io.ReaderAt, size int64) (*fs.Allocation, error) {
	if size < 512 {
		return nil, fmt.Errorf("fat: %w: %d bytes is too small", fs.ErrUnknown, size)
	}
	boot := make([]byte, 512)
	if err := readAt(r, boot, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	v, err := parseBoot(boot)
	if err != nil {
		return nil, err
	}
	if fsSize := v.totalSecs * v.sectorSize; fsSize > size {
		return nil, fmt.Errorf("%w: the volume is %d bytes, its partition only %d (truncated?)", errCorrupt, fsSize, size)
	}
	used, err := v.usedExtents(r)
	if err != nil {
		return nil, err
	}
	label, err := v.label(r)
	if err != nil {
		return nil, err
	}
	a := &fs.Allocation{
		Type:      v.typ,
		Label:     label,
		BlockSize: int(v.clusterSize),
		Size:      v.totalSecs * v.sectorSize,
	}
	if v.serial != nil {
		s := v.serial
		a.UUID = fmt.Sprintf("%02X%02X-%02X%02X", s[3], s[2], s[1], s[0])
	}
	a.Used = fs.Normalize(used, a.Size)
	return a, nil
}

// parseBoot checks a boot sector as blkid does and returns the volume's
// geometry.
func parseBoot(b []byte) (*volume, error) {
	unknown := func(why string) error { return fmt.Errorf("fat: %w: %s", fs.ErrUnknown, why) }
	le16 := func(off int) int64 { return int64(binary.LittleEndian.Uint16(b[off:])) }
	le32 := func(off int) int64 { return int64(binary.LittleEndian.Uint32(b[off:])) }

	// blkid's magics: a type string, a jump instruction or the 0x55AA
	// signature; without a type string the signature must be there.
	t36, t52 := string(b[0x36:0x36+8]), string(b[0x52:0x52+8])
	typeString := t52[:5] == "MSWIN" || t52 == "FAT32   " || t36[:5] == "MSDOS" ||
		t36 == "FAT16   " || t36 == "FAT12   " || t36 == "FAT     "
	if !typeString {
		if b[510] != 0x55 || b[511] != 0xAA {
			return nil, unknown("no boot sector signature")
		}
		if t36 == "JFS     " || t36 == "HPFS    " {
			return nil, unknown("a JFS or HPFS pseudo boot sector")
		}
	}
	if string(b[3:11]) == "NTFS    " || string(b[3:11]) == "EXFAT   " {
		return nil, unknown("an NTFS or exFAT boot sector")
	}

	v := &volume{
		sectorSize:   le16(0x0B),
		reservedSecs: le16(0x0E),
		numFATs:      int64(b[0x10]),
		rootEntries:  le16(0x11),
	}
	spc := int64(b[0x0D])
	media := b[0x15]
	switch {
	case v.numFATs == 0:
		return nil, unknown("no FAT copies")
	case v.reservedSecs == 0:
		return nil, unknown("no reserved sectors")
	case media != 0xF0 && media < 0xF8:
		return nil, unknown(fmt.Sprintf("media descriptor %#x", media))
	case spc == 0 || spc&(spc-1) != 0:
		return nil, unknown(fmt.Sprintf("%d sectors per cluster", spc))
	case v.sectorSize < 512 || v.sectorSize > 4096 || v.sectorSize&(v.sectorSize-1) != 0:
		return nil, unknown(fmt.Sprintf("%d bytes per sector", v.sectorSize))
	}
	v.clusterSize = spc * v.sectorSize
	v.totalSecs = le16(0x13)
	if v.totalSecs == 0 {
		v.totalSecs = le32(0x20)
	}
	v.fatSecs = le16(0x16)
	if v.fatSecs == 0 {
		v.fat32Layout = true
		v.fatSecs = le32(0x24)
	}
	if v.fatSecs == 0 {
		return nil, unknown("no FAT size")
	}
	v.rootDirSectors = (v.rootEntries*32 + v.sectorSize - 1) / v.sectorSize
	meta := v.reservedSecs + v.numFATs*v.fatSecs + v.rootDirSectors
	if v.totalSecs <= meta {
		return nil, unknown(fmt.Sprintf("%d sectors, %d of them before the data area", v.totalSecs, meta))
	}
	v.clusters = (v.totalSecs - meta) / spc
	v.rootDirStart = (v.reservedSecs + v.numFATs*v.fatSecs) * v.sectorSize
	v.dataStart = meta * v.sectorSize

	switch {
	case v.fat32Layout:
		// A FAT32 boot sector with fewer clusters than the specification's
		// minimum is still FAT32 to Linux and dosfstools (mkfs.vfat -F 32
		// makes such volumes); its FAT entries are 32 bits wide.
		if v.clusters > maxFAT32 {
			return nil, unknown(fmt.Sprintf("%d clusters", v.clusters))
		}
		v.typ, v.bits = "fat32", 32
		v.rootCluster = binary.LittleEndian.Uint32(b[0x2C:]) & 0x0FFFFFFF
		v.serial = b[0x43:0x47]
		if b[0x42] == 0x29 {
			v.bootLabel = b[0x47:0x52]
		}
	case v.clusters <= maxFAT12:
		v.typ, v.bits = "fat12", 12
	case v.clusters <= maxFAT16:
		v.typ, v.bits = "fat16", 16
	default:
		return nil, unknown(fmt.Sprintf("%d clusters in a FAT12/16 layout", v.clusters))
	}
	if !v.fat32Layout {
		if sig := b[0x26]; sig == 0x28 || sig == 0x29 {
			v.serial = b[0x27:0x2B]
		}
		if b[0x26] == 0x29 {
			v.bootLabel = b[0x2B:0x36]
		}
	}
	if v.serial != nil && allZero(v.serial) {
		v.serial = nil // blkid shows no UUID then
	}
	// Linux (fat_fill_super) uses only the clusters the FAT has entries for.
	if entries := v.fatSecs * v.sectorSize * 8 / int64(v.bits); v.clusters > entries-2 {
		v.clusters = max(entries-2, 0)
	}
	return v, nil
}

// usedExtents returns the metadata area and every cluster in use.
func (v *volume) usedExtents(r io.ReaderAt) ([]fs.Extent, error) {
	used := []fs.Extent{{Off: 0, Len: v.dataStart}}
	entries := v.clusters + 2
	// A window of entries is read from every FAT copy at a time, so memory
	// stays bounded whatever the volume's size. It is even, so FAT12's
	// 3-byte entry pairs never straddle two windows.
	const window = 1 << 16
	buf := make([]byte, window*v.bits/8)
	inUse := make([]bool, window)
	for first := int64(0); first < entries; first += window {
		n := min(window, entries-first)
		clear(inUse)
		for c := int64(0); c < v.numFATs; c++ {
			start := first * int64(v.bits) / 8
			length := (n*int64(v.bits) + 7) / 8
			fatOff := (v.reservedSecs + c*v.fatSecs) * v.sectorSize
			if err := readAt(r, buf[:length], fatOff+start); err != nil {
				return nil, fmt.Errorf("fat: FAT %d: %w", c+1, err)
			}
			for i := int64(0); i < n; i++ {
				if e := v.entry(buf, i); e != 0 && !v.bad(e) {
					inUse[i] = true
				}
			}
		}
		for i := int64(0); i < n; i++ {
			cl := first + i
			if cl < 2 || !inUse[i] {
				continue
			}
			off := v.dataStart + (cl-2)*v.clusterSize
			if last := &used[len(used)-1]; last.Off+last.Len == off {
				last.Len += v.clusterSize
			} else {
				used = append(used, fs.Extent{Off: off, Len: v.clusterSize})
			}
		}
	}
	return used, nil
}

// entry returns FAT entry i of buf, a window of the table starting at an even
// entry.
func (v *volume) entry(buf []byte, i int64) uint32 {
	switch v.bits {
	case 12:
		p := i * 3 / 2
		x := uint32(buf[p])
		if p+1 < int64(len(buf)) {
			x |= uint32(buf[p+1]) << 8
		}
		if i&1 == 1 {
			return x >> 4
		}
		return x & 0xFFF
	case 16:
		return uint32(binary.LittleEndian.Uint16(buf[i*2:]))
	default:
		return binary.LittleEndian.Uint32(buf[i*4:]) & 0x0FFFFFFF
	}
}

// bad reports whether e is the bad-cluster mark.
func (v *volume) bad(e uint32) bool {
	switch v.bits {
	case 12:
		return e == 0xFF7
	case 16:
		return e == 0xFFF7
	default:
		return e == 0x0FFFFFF7
	}
}

// label returns the volume label as blkid shows it: the root directory's
// volume label entry, else the boot sector's; "NO NAME" is no label.
func (v *volume) label(r io.ReaderAt) (string, error) {
	raw, err := v.rootLabel(r)
	if err != nil {
		return "", err
	}
	if raw == nil {
		raw = v.bootLabel
	}
	if raw == nil || string(raw) == "NO NAME    " {
		return "", nil
	}
	s := string(raw)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " \t\n\v\f\r"), nil
}

// rootLabel returns the 11 bytes of the root directory's volume label entry,
// or nil if there is none. On FAT32 it follows the root directory's cluster
// chain in the first FAT for at most 99 clusters, as blkid does.
func (v *volume) rootLabel(r io.ReaderAt) ([]byte, error) {
	if !v.fat32Layout {
		buf := make([]byte, v.rootEntries*32)
		if err := readAt(r, buf, v.rootDirStart); err != nil {
			return nil, fmt.Errorf("fat: root directory: %w", err)
		}
		return findLabel(buf), nil
	}
	buf := make([]byte, v.clusterSize)
	var ent [4]byte
	cl := int64(v.rootCluster)
	for range 99 {
		if cl < 2 || cl >= v.clusters+2 {
			return nil, nil
		}
		if err := readAt(r, buf, v.dataStart+(cl-2)*v.clusterSize); err != nil {
			return nil, fmt.Errorf("fat: root directory: %w", err)
		}
		if l := findLabel(buf); l != nil {
			return l, nil
		}
		if err := readAt(r, ent[:], v.reservedSecs*v.sectorSize+cl*4); err != nil {
			return nil, fmt.Errorf("fat: FAT: %w", err)
		}
		cl = int64(binary.LittleEndian.Uint32(ent[:]) & 0x0FFFFFFF)
	}
	return nil, nil
}

// findLabel returns the name of the first volume label entry in dir, a run of
// 32-byte directory entries, or nil; it stops at the end-of-directory mark.
func findLabel(dir []byte) []byte {
	for ; len(dir) >= 32; dir = dir[32:] {
		e := dir[:32]
		attr := e[11]
		switch {
		case e[0] == 0:
			return nil
		case e[0] == 0xE5, e[20] != 0 || e[21] != 0 || e[26] != 0 || e[27] != 0, attr&0x3F == 0x0F:
			continue // deleted, has clusters, or a long-name entry
		case attr&0x18 == 0x08:
			name := append([]byte(nil), e[:11]...)
			if name[0] == 0x05 {
				name[0] = 0xE5
			}
			return name
		}
	}
	return nil
}

// readAt fills buf from r at off; a short read is an error.
func readAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
