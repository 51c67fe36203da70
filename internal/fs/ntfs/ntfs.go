// Package ntfs reads NTFS volumes: which clusters they use (Probe, here) and
// their files (Open, in reader.go), from their own structures, parsed here
// by hand:
//
//   - the boot sector: "NTFS    " at byte 3, bytes per sector (u16 at 0x0B),
//     sectors per cluster (u8 at 0x0D; above 0x80 it is 2^(256-value)), total
//     sectors (u64 at 0x28), the $MFT's first cluster (u64 at 0x30), the MFT
//     record size (s8 at 0x40: clusters, or 2^-value bytes if negative) and the
//     serial number (u64 at 0x48);
//   - MFT record 0 ($MFT), whose unnamed $DATA attribute maps the MFT itself;
//   - MFT record 6 ($Bitmap), whose unnamed $DATA attribute is the cluster
//     bitmap: bit i (byte i/8, bit i%8) is set if cluster i is in use;
//   - MFT record 3 ($Volume), whose $VOLUME_NAME attribute is the label.
//
// mft.go decodes MFT records and attributes, runlist.go runlists and reads an
// attribute's data through them, file.go gathers a file's attributes over its
// MFT records; they know nothing of allocation. The reader of files (Open,
// reader.go) is built on them, with index.go (folders) and lznt1.go
// (compressed data).
//
// Used is every cluster the bitmap marks, plus the boot sector and the backup
// boot sector, which sits just past the last cluster-counted sector (the last
// sector of the partition for volumes made by Windows or mkntfs), outside the
// bitmap.
package ntfs

import (
	"cairn/internal/fs/lru"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"cairn/internal/fs"
)

// maxClusterSize is the largest cluster NTFS allows (Windows 10 1709 and
// later format up to 2 MiB).
const maxClusterSize = 2 << 20

// maxRecordSize bounds the MFT record size (1 KiB or 4 KiB in practice).
const maxRecordSize = 64 << 10

// MFT record numbers of the system files used here.
const (
	recMFT    = 0
	recVolume = 3
	recBitmap = 6
)

// errCorrupt is wrapped by every error about a volume that is recognised as
// NTFS but whose structures are inconsistent (as opposed to fs.ErrUnknown:
// not NTFS at all).
var errCorrupt = errors.New("ntfs: corrupt filesystem")

// volume is an NTFS volume being read.
type volume struct {
	r            io.ReaderAt
	sectorSize   int64
	clusterSize  int64
	totalSectors int64
	clusters     int64 // clusters the bitmap covers: totalSectors / sectors per cluster
	recordSize   int64
	mftLCN       int64
	serial       uint64
	mft          *runReader // the $MFT's data
	// mftCache holds blocks of the $MFT's data by number; it is set once
	// the $MFT's runlist is known.
	mftCache *lru.Cache[int64, []byte]
}

// Probe reads the NTFS volume on r, a partition of size bytes. It returns an
// error matching fs.ErrUnknown if r holds no NTFS volume, and another error if
// it holds one whose structures are damaged or cannot be read.
func Probe(r io.ReaderAt, size int64) (*fs.Allocation, error) {
	if size < 512 {
		return nil, fmt.Errorf("ntfs: %w: %d bytes is too small", fs.ErrUnknown, size)
	}
	v, err := open(r, size)
	if err != nil {
		return nil, err
	}
	rec, err := v.readRecord(recBitmap)
	if err != nil {
		return nil, corrupt(fmt.Errorf("$Bitmap: %w", err))
	}
	bitmap, err := v.openData(recBitmap, rec, "")
	if err != nil {
		return nil, corrupt(fmt.Errorf("$Bitmap: %w", err))
	}
	used, err := v.bitmapExtents(bitmap)
	if err != nil {
		return nil, corrupt(fmt.Errorf("$Bitmap: %w", err))
	}

	a := &fs.Allocation{
		Type:      "ntfs",
		Label:     v.label(),
		UUID:      fmt.Sprintf("%016X", v.serial),
		BlockSize: int(v.clusterSize),
		Size:      v.totalSectors * v.sectorSize,
	}
	used = append(used, fs.Extent{Off: 0, Len: v.sectorSize})
	if backup := v.totalSectors * v.sectorSize; backup+v.sectorSize <= size {
		used = append(used, fs.Extent{Off: backup, Len: v.sectorSize})
		a.Size = backup + v.sectorSize
	}
	a.Used = fs.Normalize(used, a.Size)
	return a, nil
}

// open reads the boot sector and the $MFT's runlist of the NTFS volume on r,
// a partition of size bytes.
func open(r io.ReaderAt, size int64) (*volume, error) {
	boot := make([]byte, 512)
	if err := readAt(r, boot, 0); err != nil {
		return nil, fmt.Errorf("ntfs: boot sector: %w", err)
	}
	v, err := parseBoot(boot, size)
	if err != nil {
		return nil, err
	}
	v.r = r
	if err := v.openMFT(); err != nil {
		return nil, corrupt(err)
	}
	v.mftCache = lru.New[int64, []byte](mftCacheBlocks)
	return v, nil
}

// corrupt marks err as being about a damaged volume.
func corrupt(err error) error {
	return fmt.Errorf("%w: %w", errCorrupt, err)
}

// parseBoot checks an NTFS boot sector as blkid does and returns the volume's
// geometry; size is the partition's.
func parseBoot(b []byte, size int64) (*volume, error) {
	unknown := func(why string) error { return fmt.Errorf("ntfs: %w: %s", fs.ErrUnknown, why) }
	le16 := func(off int) int64 { return int64(binary.LittleEndian.Uint16(b[off:])) }
	le64 := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	if string(b[3:11]) != "NTFS    " {
		return nil, unknown("no NTFS signature")
	}
	v := &volume{sectorSize: le16(0x0B), serial: le64(0x48)}
	if v.sectorSize < 256 || v.sectorSize > 4096 || v.sectorSize&(v.sectorSize-1) != 0 {
		return nil, unknown(fmt.Sprintf("%d bytes per sector", v.sectorSize))
	}
	var spc int64
	switch raw := int64(b[0x0D]); {
	case raw > 0x80:
		// Large clusters: the byte is a negative shift count.
		if shift := 256 - raw; shift <= 21 {
			spc = 1 << shift
		}
	case raw != 0 && raw&(raw-1) == 0:
		spc = raw
	}
	if spc == 0 {
		return nil, unknown(fmt.Sprintf("sectors per cluster byte %#x", b[0x0D]))
	}
	v.clusterSize = v.sectorSize * spc
	if v.clusterSize > maxClusterSize {
		return nil, unknown(fmt.Sprintf("clusters of %d bytes", v.clusterSize))
	}
	// The FAT fields of the BIOS parameter block are zero on NTFS.
	if le16(0x0E) != 0 || b[0x10] != 0 || le16(0x11) != 0 || le16(0x13) != 0 || le16(0x16) != 0 ||
		binary.LittleEndian.Uint32(b[0x20:]) != 0 {
		return nil, unknown("FAT fields set in the BIOS parameter block")
	}
	switch c := int64(int8(b[0x40])); {
	case c > 0:
		v.recordSize = c * v.clusterSize
	case c < 0 && c >= -31:
		v.recordSize = 1 << -c
	}
	if v.recordSize < fixupStride || v.recordSize > maxRecordSize || v.recordSize&(v.recordSize-1) != 0 {
		return nil, unknown(fmt.Sprintf("MFT records of %d bytes (byte %#x)", v.recordSize, b[0x40]))
	}
	total := le64(0x28)
	if total == 0 || total > uint64(size/v.sectorSize) {
		if total != 0 {
			return nil, corrupt(fmt.Errorf("%d sectors of %d bytes, the partition only %d bytes (truncated?)", total, v.sectorSize, size))
		}
		return nil, unknown("no sectors")
	}
	v.totalSectors = int64(total)
	v.clusters = v.totalSectors / spc
	mft, mirr := le64(0x30), le64(0x38)
	if mft >= uint64(v.clusters) || mirr >= uint64(v.clusters) {
		return nil, unknown(fmt.Sprintf("$MFT at cluster %d, $MFTMirr at %d, of %d", mft, mirr, v.clusters))
	}
	v.mftLCN = int64(mft)
	return v, nil
}

// openMFT reads MFT record 0 and sets v.mft to the $MFT's data. While the
// $MFT's runlist is not known, the record is read at the cluster the boot
// sector names; and if the $MFT's runlist is split over records by an
// attribute list, its first piece (in record 0) maps the others.
func (v *volume) openMFT() error {
	n := (v.recordSize + v.clusterSize - 1) / v.clusterSize
	if v.mftLCN+n > v.clusters {
		return fmt.Errorf("$MFT: record 0 past the volume's end")
	}
	v.mft = &runReader{vol: v, runs: []run{{VCN: 0, LCN: v.mftLCN, Len: n}}, dataSize: v.recordSize, initSize: v.recordSize}
	rec, err := v.readRecord(recMFT)
	if err != nil {
		return fmt.Errorf("$MFT: %w", err)
	}
	first := rec.find(attrData, "")
	if first == nil || !first.NonResident || first.LowVCN != 0 {
		return errors.New("$MFT: no non-resident $DATA attribute in record 0")
	}
	firstSize := first.DataSize
	if first.HighVCN+1 <= firstSize/v.clusterSize {
		firstSize = (first.HighVCN + 1) * v.clusterSize
	}
	if v.mft, err = v.newRunReader(first.Runs, firstSize, firstSize); err != nil {
		return fmt.Errorf("$MFT: %w", err)
	}
	d, err := v.openData(recMFT, rec, "")
	if err != nil {
		return fmt.Errorf("$MFT: %w", err)
	}
	rr, ok := d.(*runReader)
	if !ok {
		return errors.New("$MFT: resident or compressed $DATA")
	}
	v.mft = rr
	return nil
}

// readRecord reads MFT record n and applies its update sequence.
func (v *volume) readRecord(n int64) (*record, error) {
	if n < 0 || n >= v.mft.dataSize/v.recordSize {
		return nil, fmt.Errorf("MFT record %d past the $MFT's %d bytes", n, v.mft.dataSize)
	}
	buf := make([]byte, v.recordSize)
	if err := v.readMFT(buf, n*v.recordSize); err != nil {
		return nil, fmt.Errorf("MFT record %d: %w", n, err)
	}
	rec, err := parseRecord(buf)
	if err != nil {
		return nil, fmt.Errorf("MFT record %d: %w", n, err)
	}
	if rec.Flags&recordInUse == 0 {
		return nil, fmt.Errorf("MFT record %d is not in use", n)
	}
	return rec, nil
}

// mftBlock is how much of the $MFT is read and cached at a time (records
// are read one after another when a folder is listed), mftCacheBlocks how
// many blocks are kept.
const (
	mftBlock       = 64 << 10
	mftCacheBlocks = 32
)

// readMFT fills buf, a record, from the $MFT's data at off, through the
// cache of $MFT blocks once open has set it up.
func (v *volume) readMFT(buf []byte, off int64) error {
	if v.mftCache == nil || v.recordSize > mftBlock {
		_, err := v.mft.ReadAt(buf, off)
		return err
	}
	blk := off / mftBlock
	data, ok := v.mftCache.Get(blk)
	if !ok {
		data = make([]byte, min(mftBlock, v.mft.dataSize-blk*mftBlock))
		if _, err := v.mft.ReadAt(data, blk*mftBlock); err != nil && err != io.EOF {
			// A block that cannot be read whole may still hold
			// records that can.
			_, err := v.mft.ReadAt(buf, off)
			return err
		}
		v.mftCache.Put(blk, data)
	}
	copy(buf, data[off-blk*mftBlock:])
	return nil
}

// openData returns the data of the attribute of type $DATA named name of
// record recNo, rec, following its attribute list if it has one.
func (v *volume) openData(recNo int64, rec *record, name string) (stream, error) {
	f, err := v.loadFile(recNo, rec)
	if err != nil {
		return nil, err
	}
	d, err := v.openAttr(f, attrData, name)
	if err != nil {
		return nil, fmt.Errorf("$DATA %q: %w", name, err)
	}
	return d, nil
}

// nonResident returns a reader of a non-resident attribute's data, a being its
// piece at VCN 0 (which holds the sizes) and runs all its runs.
func (v *volume) nonResident(a *attribute, runs []run) (*runReader, error) {
	if a.Flags&(flagCompressed|flagEncrypted) != 0 {
		return nil, fmt.Errorf("compressed or encrypted attribute %#x (flags %#x)", a.Type, a.Flags)
	}
	return v.newRunReader(runs, a.DataSize, a.InitSize)
}

// maxAttrList bounds an attribute list's size (Windows keeps it under 256 KiB).
const maxAttrList = 1 << 20

// attrValue returns the value of a (an attribute list), resident or not.
func (v *volume) attrValue(a *attribute) ([]byte, error) {
	if !a.NonResident {
		return a.Value, nil
	}
	if a.LowVCN != 0 || a.DataSize > maxAttrList {
		return nil, fmt.Errorf("non-resident value of %d bytes at VCN %d", a.DataSize, a.LowVCN)
	}
	rr, err := v.nonResident(a, a.Runs)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, a.DataSize)
	if _, err := rr.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// bitmapChunk is how many bytes of the cluster bitmap are read at a time.
const bitmapChunk = 1 << 20

// bitmapExtents returns the byte extents of the clusters that bitmap marks.
func (v *volume) bitmapExtents(bitmap stream) ([]fs.Extent, error) {
	need := (v.clusters + 7) / 8
	if bitmap.Size() < need {
		return nil, fmt.Errorf("%d bytes for %d clusters", bitmap.Size(), v.clusters)
	}
	var used []fs.Extent
	add := func(first, n int64) {
		off, length := first*v.clusterSize, n*v.clusterSize
		if k := len(used); k > 0 && used[k-1].Off+used[k-1].Len == off {
			used[k-1].Len += length
			return
		}
		used = append(used, fs.Extent{Off: off, Len: length})
	}
	buf := make([]byte, min(bitmapChunk, need))
	for pos := int64(0); pos < need; pos += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), need-pos)]
		if _, err := bitmap.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return nil, err
		}
		for i, x := range chunk {
			cl := (pos + int64(i)) * 8
			switch x {
			case 0:
			case 0xFF:
				add(cl, min(8, v.clusters-cl))
			default:
				for bit := range int64(8) {
					if x&(1<<bit) != 0 && cl+bit < v.clusters {
						add(cl+bit, 1)
					}
				}
			}
		}
	}
	return used, nil
}

// Size reports the size of the data rr reads.
func (rr *runReader) Size() int64 { return rr.dataSize }

// label returns the volume name from $Volume's $VOLUME_NAME attribute as
// blkid shows it, or "" if there is none. A damaged $Volume record only loses
// the label: the cluster bitmap does not depend on it.
func (v *volume) label() string {
	rec, err := v.readRecord(recVolume)
	if err != nil {
		return ""
	}
	a := rec.find(attrVolumeName, "")
	if a == nil || a.NonResident {
		return ""
	}
	s := decodeUTF16(a.Value)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " \t\n\v\f\r")
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
