package format

import "fmt"

// IndexPack lists the blobs of one pack file.
type IndexPack struct {
	ID    ID
	Blobs []PackBlob
}

// Index is the plaintext of one index file: which blobs sit where in which packs.
type Index struct {
	Packs []IndexPack
	// Supersedes names index files whose contents this one replaces (written by
	// prune and repair); readers ignore the superseded ones.
	Supersedes []ID
}

var indexMagic = []byte("CIX")

const indexVersion = 1

// EncodeIndex returns the binary form of idx.
func EncodeIndex(idx *Index) []byte {
	b := append([]byte{}, indexMagic...)
	b = append(b, indexVersion)
	b = appendUvarint(b, uint64(len(idx.Supersedes)))
	for _, id := range idx.Supersedes {
		b = append(b, id[:]...)
	}
	b = appendUvarint(b, uint64(len(idx.Packs)))
	for _, p := range idx.Packs {
		b = append(b, p.ID[:]...)
		b = appendUvarint(b, uint64(len(p.Blobs)))
		for _, pb := range p.Blobs {
			b = append(b, byte(pb.Type))
			b = append(b, pb.ID[:]...)
			b = appendUvarint(b, uint64(pb.Offset))
			b = appendUvarint(b, uint64(pb.Length))
			b = appendUvarint(b, uint64(pb.RawLength))
		}
	}
	return b
}

// DecodeIndex parses the binary form made by EncodeIndex.
func DecodeIndex(b []byte) (*Index, error) {
	if len(b) < len(indexMagic)+1 || string(b[:len(indexMagic)]) != string(indexMagic) {
		return nil, fmt.Errorf("index: not an index file")
	}
	if v := b[len(indexMagic)]; v != indexVersion {
		return nil, fmt.Errorf("index: unsupported version %d", v)
	}
	d := decoder{b: b[len(indexMagic)+1:]}
	idx := &Index{}
	ns := d.count(IDSize)
	for i := 0; i < ns && d.err == nil; i++ {
		var id ID
		d.id(&id)
		idx.Supersedes = append(idx.Supersedes, id)
	}
	np := d.count(IDSize + 1)
	for i := 0; i < np && d.err == nil; i++ {
		var p IndexPack
		d.id(&p.ID)
		nb := d.count(1 + IDSize + 3)
		for j := 0; j < nb && d.err == nil; j++ {
			var pb PackBlob
			pb.Type = BlobType(d.byte())
			d.id(&pb.ID)
			pb.Offset = uint32(d.uvarint(1<<32 - 1))
			pb.Length = uint32(d.uvarint(MaxBlobSize + 1024))
			pb.RawLength = uint32(d.uvarint(MaxBlobSize))
			if d.err == nil && !pb.Type.valid() {
				d.err = fmt.Errorf("pack %s blob %d: unknown type %d", p.ID.Short(), j, pb.Type)
			}
			if d.err == nil && uint64(pb.Offset)+uint64(pb.Length) > 1<<32-1 {
				d.err = fmt.Errorf("pack %s blob %d: ends beyond 4 GiB", p.ID.Short(), j)
			}
			p.Blobs = append(p.Blobs, pb)
		}
		idx.Packs = append(idx.Packs, p)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("index: %w", d.err)
	}
	return idx, nil
}
