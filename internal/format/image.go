package format

import (
	"encoding/binary"
	"fmt"
)

// Image describes what an image snapshot holds: a whole disk (its partition table,
// the gaps between partitions and every partition) or one partition. The disk is
// cut into regions that cover it from offset 0 to Size without gaps or overlaps.
type Image struct {
	Source     string        `json:"source"` // the device or file that was imaged
	WholeDisk  bool          `json:"whole_disk"`
	Size       int64         `json:"size"`
	SectorSize int           `json:"sector_size"`
	Model      string        `json:"model,omitempty"`
	Serial     string        `json:"serial,omitempty"`
	Table      string        `json:"table"` // "gpt", "mbr" or "none"
	DiskID     string        `json:"disk_id,omitempty"`
	Regions    []ImageRegion `json:"regions"`
	// Lost lists the runs of the disk whose chunks were lost from the repository and
	// that a repair replaced with null chunks: they restore as zeros, and a restore
	// says so. Sorted by offset, not overlapping; omitted when none.
	Lost []ByteRange `json:"lost,omitempty"`
	// Unreadable lists the runs of the disk that could not be read from the source
	// when the image was made (bad sectors): they were stored as zeros, restore as
	// zeros, and a restore says so. Sorted by offset, not overlapping; omitted
	// when none.
	Unreadable []ByteRange `json:"unreadable,omitempty"`
}

// ByteRange is the run of Length bytes of a disk that starts at Offset.
type ByteRange struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// Region kinds.
const (
	RegionPartition = "partition"
	RegionGap       = "gap" // partition table, boot loader, unpartitioned space
)

// ImageRegion is a run of the disk stored as fixed-size chunks: chunk i covers bytes
// [Offset+i*ChunkSize, Offset+(i+1)*ChunkSize) (the last one may be shorter). The
// chunk ids are in the chunk-list blobs named by Chunks, in order; a null id is a
// chunk that is all zeros or that the filesystem does not use, stored nowhere.
type ImageRegion struct {
	Kind      string         `json:"kind"`
	Offset    int64          `json:"offset"`
	Size      int64          `json:"size"`
	ChunkSize int            `json:"chunk_size"`
	Chunks    []ID           `json:"chunks"`
	Partition *PartitionInfo `json:"partition,omitempty"`
}

// PartitionInfo is a partition's entry in the table and what is on it.
type PartitionInfo struct {
	Number     int    `json:"number"`
	Type       string `json:"type"` // GPT type GUID or MBR type ("0x83")
	TypeName   string `json:"type_name,omitempty"`
	Name       string `json:"name,omitempty"`
	UUID       string `json:"uuid,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"`
	Bootable   bool   `json:"bootable,omitempty"`
	FS         string `json:"fs,omitempty"` // "ext4", "fat32", "ntfs", "swap", "" if unknown
	Label      string `json:"label,omitempty"`
	FSUUID     string `json:"fs_uuid,omitempty"`
	FSSize     int64  `json:"fs_size,omitempty"`
	BlockSize  int    `json:"block_size,omitempty"`
	UsedBytes  int64  `json:"used_bytes"` // bytes the filesystem uses (the region's size if unknown)
}

// Chunks returns how many chunks the region has.
func (r *ImageRegion) NumChunks() int64 {
	if r.ChunkSize <= 0 {
		return 0
	}
	return (r.Size + int64(r.ChunkSize) - 1) / int64(r.ChunkSize)
}

// SpanOf returns the chunks [start, end) of the region that a blob of n bytes
// named at chunk i holds: the run of 2^k chunks from a multiple of 2^k that
// holds i, clipped to the region's end, whose bytes add up to n. There is at
// most one; when there is none, the chunk list and the blob do not belong
// together (the list is damaged).
func (r *ImageRegion) SpanOf(i, n int64) (start, end int64, err error) {
	cs, total := int64(r.ChunkSize), r.NumChunks()
	if i < 0 || i >= total {
		return 0, 0, fmt.Errorf("chunk %d of a region of %d chunks", i, total)
	}
	for l := int64(1); ; l *= 2 {
		s := i - i%l
		e := min(s+l, total)
		b := min(e*cs, r.Size) - s*cs
		if b == n {
			return s, e, nil
		}
		if b > n || (s == 0 && e == total) {
			return 0, 0, fmt.Errorf("a blob of %d bytes at chunk %d fits no span of %d-byte chunks", n, i, cs)
		}
	}
}

func (img *Image) check() error {
	if img.Size <= 0 || img.SectorSize <= 0 {
		return fmt.Errorf("image: invalid size %d or sector size %d", img.Size, img.SectorSize)
	}
	var end int64
	for i, r := range img.Regions {
		if r.Offset != end || r.Size <= 0 || r.Size > img.Size-r.Offset {
			return fmt.Errorf("image: region %d (%d+%d) does not follow at %d within %d bytes", i, r.Offset, r.Size, end, img.Size)
		}
		if r.Kind != RegionPartition && r.Kind != RegionGap {
			return fmt.Errorf("image: region %d has unknown kind %q", i, r.Kind)
		}
		if r.Kind == RegionPartition && r.Partition == nil {
			return fmt.Errorf("image: partition region %d has no partition info", i)
		}
		if r.ChunkSize < 512 || r.ChunkSize > MaxBlobSize {
			return fmt.Errorf("image: region %d has invalid chunk size %d", i, r.ChunkSize)
		}
		end += r.Size
	}
	if end != img.Size {
		return fmt.Errorf("image: regions cover %d of %d bytes", end, img.Size)
	}
	if err := checkRanges("lost", img.Lost, img.Size); err != nil {
		return err
	}
	return checkRanges("unreadable", img.Unreadable, img.Size)
}

// checkRanges checks that ranges are sorted, disjoint, not empty and within size
// bytes.
func checkRanges(what string, ranges []ByteRange, size int64) error {
	var next int64
	for i, l := range ranges {
		if l.Offset < next || l.Length <= 0 || l.Length > size-l.Offset {
			return fmt.Errorf("image: %s range %d (%d+%d) is not sorted, not disjoint or not within %d bytes", what, i, l.Offset, l.Length, size)
		}
		next = l.Offset + l.Length
	}
	return nil
}

// ChunkListMax is how many chunk ids one chunk-list blob holds at most.
const ChunkListMax = 1 << 16

var chunkListMagic = []byte("CCL")

// Chunk-list versions. Version 1 names only blobs of one chunk each. Version 2
// may name blobs that span several chunks (docs/format.md, "Image snapshots"),
// and may carry group digests.
const (
	chunkListV1 = 1
	chunkListV2 = 2
)

// ChunkList is the content of a chunk-list blob: one chunk id for each of the
// chunks it covers and, optionally, a digest of each group of chunks.
type ChunkList struct {
	IDs []ID
	// Group is how many chunks each digest covers, a power of two up to
	// ChunkListMax; 0 when there are no digests.
	Group int
	// Digests holds one id for each Group chunks from the list's first, the
	// last group possibly shorter: the content id of the bytes those chunks
	// restore to (null chunks as zeros, clipped to the region), or the null id
	// when it is not known. A digest is a hint that lets the next image of the
	// same disk recognise an unchanged group; reading never needs it.
	Digests []ID
}

// EncodeChunkList returns the binary form of a list of chunk ids without
// digests.
func EncodeChunkList(ids []ID) []byte {
	return EncodeChunkListDigests(&ChunkList{IDs: ids})
}

// EncodeChunkListDigests returns the binary form of l, version 2. l must be
// valid: at most ChunkListMax ids, and Group 0 with no digests or a power of
// two with one digest for each Group ids (rounded up).
func EncodeChunkListDigests(l *ChunkList) []byte {
	b := append([]byte{}, chunkListMagic...)
	b = append(b, chunkListV2)
	b = binary.AppendUvarint(b, uint64(len(l.IDs)))
	for _, id := range l.IDs {
		b = append(b, id[:]...)
	}
	b = binary.AppendUvarint(b, uint64(l.Group))
	for _, id := range l.Digests {
		b = append(b, id[:]...)
	}
	return b
}

// DecodeChunkList parses a chunk list of either version and returns its ids.
func DecodeChunkList(b []byte) ([]ID, error) {
	l, err := DecodeChunkListDigests(b)
	if err != nil {
		return nil, err
	}
	return l.IDs, nil
}

// DecodeChunkListDigests parses a chunk list of either version; a version 1
// list has no digests.
func DecodeChunkListDigests(b []byte) (*ChunkList, error) {
	if len(b) < len(chunkListMagic)+1 || string(b[:len(chunkListMagic)]) != string(chunkListMagic) {
		return nil, fmt.Errorf("chunk list: bad magic")
	}
	v := b[len(chunkListMagic)]
	if v != chunkListV1 && v != chunkListV2 {
		return nil, fmt.Errorf("chunk list: unsupported version %d", v)
	}
	d := decoder{b: b[len(chunkListMagic)+1:]}
	n := d.count(IDSize)
	if d.err == nil && n > ChunkListMax {
		d.err = fmt.Errorf("%d ids exceed the maximum of %d", n, ChunkListMax)
	}
	l := &ChunkList{IDs: make([]ID, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		var id ID
		d.id(&id)
		l.IDs = append(l.IDs, id)
	}
	if v == chunkListV2 {
		g := d.uvarint(ChunkListMax)
		switch {
		case d.err != nil:
		case g&(g-1) != 0:
			d.err = fmt.Errorf("group of %d chunks is not a power of two", g)
		case g != 0 && n == 0:
			d.err = fmt.Errorf("group of %d chunks in an empty list", g)
		case g != 0:
			l.Group = int(g)
			k := (n + l.Group - 1) / l.Group
			if len(d.b) < k*IDSize {
				d.err = fmt.Errorf("%d digests in %d bytes", k, len(d.b))
			}
			for i := 0; i < k && d.err == nil; i++ {
				var id ID
				d.id(&id)
				l.Digests = append(l.Digests, id)
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("chunk list: %w", d.err)
	}
	return l, nil
}
