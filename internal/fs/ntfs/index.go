package ntfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Folders. A folder's file names are the keys of a B+ tree, its index
// "$I30": the root node is the value of its $INDEX_ROOT attribute, the other
// nodes are index records ("INDX", with an update sequence like MFT
// records) in the data of its $INDEX_ALLOCATION attribute.
//
// $INDEX_ROOT: indexed attribute type (u32 at 0, $FILE_NAME), collation rule
// (u32 at 4), index record size (u32 at 8), clusters per index record (u8 at
// 12), then the node header at 16. An index record: "INDX", update sequence
// offset and count (u16 at 4 and 6), its VCN (u64 at 16), the node header at
// 24. A node header: the offset of the first entry (u32 at 0) and the end of
// the entries (u32 at 4), both from the header's start, allocated size (u32 at
// 8), flags (u8 at 12; 1: the node has children). An entry: MFT reference
// (u64 at 0), length (u16 at 8), key length (u16 at 10), flags (u16 at 12; 1:
// it has a child node, whose VCN is the entry's last 8 bytes; 2: the last
// entry, with no key), the key at 16 (a $FILE_NAME value). Index record VCNs
// count clusters, or sectors when clusters are bigger than index records.
//
// The $FILE_NAME value: parent folder's MFT reference (u64 at 0), creation,
// modification, MFT change and access times (u64 at 8, 16, 24, 32), allocated
// and data size (u64 at 40, 48), file attributes (u32 at 56), name length in
// UTF-16 units (u8 at 64), namespace (u8 at 65: 0 POSIX, 1 Win32, 2 DOS, 3
// Win32 and DOS), the name at 66.

// File name namespaces.
const nsDOS = 2

// maxIndexRecord bounds the index record size (4 KiB in practice).
const maxIndexRecord = 64 << 10

// maxIndexPrefetch is the largest $INDEX_ALLOCATION read whole (that of a
// folder of some 30000 files).
const maxIndexPrefetch = 4 << 20

// A fileName is the value of a $FILE_NAME attribute or index key.
type fileName struct {
	parent    uint64 // MFT reference
	namespace byte
	name      string
}

// parseFileName decodes a $FILE_NAME value.
func parseFileName(b []byte) (fileName, error) {
	if len(b) < 66 || 66+2*int(b[64]) > len(b) {
		return fileName{}, fmt.Errorf("ntfs: $FILE_NAME of %d bytes", len(b))
	}
	return fileName{
		parent:    binary.LittleEndian.Uint64(b),
		namespace: b[65],
		name:      decodeUTF16(b[66 : 66+2*int(b[64])]),
	}, nil
}

// An indexEntry is a file name in a folder and the file's MFT reference.
type indexEntry struct {
	ref  uint64
	name fileName
}

// readIndex returns every entry of folder f's file name index, walking the
// B+ tree from its root through every node once.
func (v *volume) readIndex(f *file) ([]indexEntry, error) {
	root := f.first(attrIndexRoot, "$I30")
	if root == nil || root.NonResident {
		return nil, errors.New("no resident $INDEX_ROOT")
	}
	b := root.Value
	if len(b) < 32 {
		return nil, fmt.Errorf("$INDEX_ROOT of %d bytes", len(b))
	}
	var out []indexEntry
	children, err := parseNode(b[16:], &out)
	if err != nil {
		return nil, fmt.Errorf("$INDEX_ROOT: %w", err)
	}
	if len(children) == 0 {
		return out, nil
	}

	size := int64(binary.LittleEndian.Uint32(b[8:]))
	if size < fixupStride || size > maxIndexRecord || size&(size-1) != 0 {
		return nil, fmt.Errorf("index records of %d bytes", size)
	}
	alloc, err := v.openAttr(f, attrIndexAlloc, "$I30")
	if err != nil {
		return nil, fmt.Errorf("$INDEX_ALLOCATION: %w", err)
	}
	vcnSize := v.clusterSize
	if v.clusterSize > size {
		vcnSize = v.sectorSize
	}
	// An index of up to maxIndexPrefetch bytes is read whole, a read a
	// run, rather than an index record at a time.
	var whole []byte
	if alloc.Size() <= maxIndexPrefetch {
		whole = make([]byte, alloc.Size())
		if _, err := alloc.ReadAt(whole, 0); err != nil && err != io.EOF {
			whole = nil // read record by record, to name the one that fails
		}
	}
	buf := make([]byte, size)
	visited := map[int64]bool{}
	for len(children) > 0 {
		vcn := children[len(children)-1]
		children = children[:len(children)-1]
		if visited[vcn] {
			return nil, fmt.Errorf("index record at VCN %d reached twice (a loop)", vcn)
		}
		visited[vcn] = true
		if vcn < 0 || vcn > (alloc.Size()-size)/vcnSize {
			return nil, fmt.Errorf("index record at VCN %d past the $INDEX_ALLOCATION's %d bytes", vcn, alloc.Size())
		}
		if whole != nil {
			copy(buf, whole[vcn*vcnSize:])
		} else if _, err := alloc.ReadAt(buf, vcn*vcnSize); err != nil && err != io.EOF {
			return nil, fmt.Errorf("index record at VCN %d: %w", vcn, err)
		}
		if string(buf[:4]) != "INDX" {
			return nil, fmt.Errorf("index record at VCN %d: no INDX signature", vcn)
		}
		if _, err := applyFixups(buf, 40, "index record"); err != nil {
			return nil, fmt.Errorf("index record at VCN %d: %w", vcn, err)
		}
		if got := int64(binary.LittleEndian.Uint64(buf[16:])); got != vcn {
			return nil, fmt.Errorf("index record at VCN %d says it is at VCN %d", vcn, got)
		}
		more, err := parseNode(buf[24:], &out)
		if err != nil {
			return nil, fmt.Errorf("index record at VCN %d: %w", vcn, err)
		}
		children = append(children, more...)
	}
	return out, nil
}

// parseNode appends the keyed entries of the index node whose header starts
// b to out, and returns the VCNs of its children.
func parseNode(b []byte, out *[]indexEntry) ([]int64, error) {
	le16 := func(off int) int { return int(binary.LittleEndian.Uint16(b[off:])) }
	le32 := func(off int) int64 { return int64(binary.LittleEndian.Uint32(b[off:])) }
	first, end := le32(0), le32(4)
	if first < 16 || first%8 != 0 || end > int64(len(b)) || first > end {
		return nil, fmt.Errorf("node entries from %d to %d of %d bytes", first, end, len(b))
	}
	var children []int64
	for off := int(first); ; {
		if off+16 > int(end) {
			return nil, errors.New("no last entry")
		}
		n, keyLen, flags := le16(off+8), le16(off+10), le16(off+12)
		if n < 16 || n%8 != 0 || off+n > int(end) {
			return nil, fmt.Errorf("entry at %d of %d bytes", off, n)
		}
		keyEnd := n
		if flags&1 != 0 {
			if n < 24 {
				return nil, fmt.Errorf("entry at %d of %d bytes with a child", off, n)
			}
			keyEnd = n - 8
			vcn := int64(binary.LittleEndian.Uint64(b[off+n-8:]))
			children = append(children, vcn)
		}
		if flags&2 != 0 {
			return children, nil
		}
		if 16+keyLen > keyEnd {
			return nil, fmt.Errorf("entry at %d: key of %d bytes", off, keyLen)
		}
		fn, err := parseFileName(b[off+16 : off+16+keyLen])
		if err != nil {
			return nil, fmt.Errorf("entry at %d: %w", off, err)
		}
		*out = append(*out, indexEntry{ref: binary.LittleEndian.Uint64(b[off:]), name: fn})
		off += n
	}
}
