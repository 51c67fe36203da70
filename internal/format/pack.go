package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BlobType says what a blob holds.
type BlobType uint8

// The blob types.
const (
	DataBlob BlobType = 1 // file content or image chunk
	TreeBlob BlobType = 2 // a Tree
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

func (t BlobType) valid() bool { return t == DataBlob || t == TreeBlob }

// Blob payload encodings: the first plaintext byte of every sealed blob.
const (
	BlobRaw  byte = 0 // the rest is the data itself
	BlobZstd byte = 1 // the rest is one zstd frame of the data
)

// PackBlob describes one blob inside a pack: Length is its stored (sealed) size,
// RawLength the size of its plaintext.
type PackBlob struct {
	Type      BlobType
	ID        ID
	Offset    uint32
	Length    uint32
	RawLength uint32
}

// MaxBlobSize bounds a blob's plaintext and stored size.
const MaxBlobSize = 64 << 20

var errShort = errors.New("truncated")

const packHeaderVersion = 1

// EncodePackHeader returns the plaintext header that lists blobs in the order they
// were written at the start of a pack; offsets are implied by that order.
func EncodePackHeader(blobs []PackBlob) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(blobs)*(1+IDSize+8))
	b = append(b, packHeaderVersion)
	b = binary.AppendUvarint(b, uint64(len(blobs)))
	for _, pb := range blobs {
		b = append(b, byte(pb.Type))
		b = append(b, pb.ID[:]...)
		b = binary.AppendUvarint(b, uint64(pb.Length))
		b = binary.AppendUvarint(b, uint64(pb.RawLength))
	}
	return b
}

// DecodePackHeader parses a header made by EncodePackHeader and fills in offsets.
func DecodePackHeader(b []byte) ([]PackBlob, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != packHeaderVersion {
		return nil, fmt.Errorf("pack header: unsupported version %d", v)
	}
	n := d.count(1 + IDSize + 2)
	var blobs []PackBlob
	var off uint64
	for i := 0; i < n && d.err == nil; i++ {
		var pb PackBlob
		pb.Type = BlobType(d.byte())
		d.id(&pb.ID)
		length := d.uvarint(MaxBlobSize + 1024)
		pb.RawLength = uint32(d.uvarint(MaxBlobSize))
		if d.err == nil && !pb.Type.valid() {
			d.err = fmt.Errorf("blob %d: unknown type %d", i, pb.Type)
		}
		if off+length > 1<<32-1 {
			d.err = fmt.Errorf("blob %d: offset beyond 4 GiB", i)
		}
		pb.Offset, pb.Length = uint32(off), uint32(length)
		off += length
		blobs = append(blobs, pb)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("pack header: %w", d.err)
	}
	return blobs, nil
}

// decoder reads the binary encodings; the first error sticks and later reads return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) id(id *ID) {
	if d.err != nil {
		return
	}
	if len(d.b) < IDSize {
		d.err = errShort
		return
	}
	copy(id[:], d.b)
	d.b = d.b[IDSize:]
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n == 0 {
		d.err = errShort
		return 0
	}
	if n < 0 {
		d.err = errors.New("uvarint overflows 64 bits")
		return 0
	}
	// Only the shortest form is valid, so that every value has one encoding.
	if n > 1 && d.b[n-1] == 0 {
		d.err = errors.New("uvarint not in its shortest form")
		return 0
	}
	if v > max {
		d.err = fmt.Errorf("value %d exceeds %d", v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads an element count and checks that the rest could hold that many
// elements of at least minSize bytes each.
func (d *decoder) count(minSize int) int {
	n := d.uvarint(uint64(len(d.b)))
	if d.err == nil && n*uint64(minSize) > uint64(len(d.b)) {
		d.err = fmt.Errorf("count %d too large for %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
