package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// fuzzMaxSize bounds the partition size the fuzz target claims.
const fuzzMaxSize = 64 << 20

// zeroPadded reads data, then zeros up to size: the start of a partition
// whose rest is empty.
type zeroPadded struct {
	data []byte
	size int64
}

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= z.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := z.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	if off < int64(len(z.data)) {
		copy(p[:n], z.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// seedLayout is where things are in testdata/ntfs.img: 4 KiB clusters, the
// $MFT from cluster 4 with records of 1 KiB.
const (
	seedCluster = 4096
	seedMFT     = 4 * seedCluster
	seedRecord  = 1024
)

// compactSeed returns the first 33 KiB of the test image, enough for Probe
// once $Bitmap's single cluster is moved to cluster 3 (free in this image),
// and the image's size.
func compactSeed(t testing.TB) ([]byte, int64) {
	img := testImage(t)
	v, err := open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if v.clusterSize != seedCluster || v.mftLCN*v.clusterSize != seedMFT || v.recordSize != seedRecord {
		t.Fatalf("testdata/ntfs.img has another layout: %+v", v)
	}
	rec, err := v.readRecord(recBitmap)
	if err != nil {
		t.Fatal(err)
	}
	runs := rec.find(attrData, "").Runs
	if len(runs) != 1 || runs[0].Len != 1 {
		t.Fatalf("$Bitmap runs %v", runs)
	}
	seed := bytes.Clone(img[:seedMFT+17*seedRecord])
	bm := runs[0].LCN * seedCluster
	copy(seed[3*seedCluster:4*seedCluster], img[bm:bm+seedCluster])
	damageBitmapRuns(t, seed, seedMFT+recBitmap*seedRecord, []byte{0x11, 0x01, 0x03, 0x00})
	return seed, int64(len(img))
}

// attrListSeed returns compactSeed with $Bitmap's $DATA split by an
// attribute list: its first cluster in record 6, its second (not read: the
// bitmap needs 64 bytes) in extension record 16.
func attrListSeed(t testing.TB) ([]byte, int64) {
	seed, size := compactSeed(t)
	list := func(typ uint32, vcn int64, rec uint64, id uint16) []byte {
		b := make([]byte, 32)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint16(b[4:], 32)
		b[7] = 26
		binary.LittleEndian.PutUint64(b[8:], uint64(vcn))
		binary.LittleEndian.PutUint64(b[16:], rec|1<<48)
		binary.LittleEndian.PutUint16(b[24:], id)
		return b
	}
	entries := append(list(0x10, 0, recBitmap, 0), list(attrData, 0, recBitmap, 5)...)
	entries = append(entries, list(attrData, 1, 16, 7)...)
	piece0 := nonResidentAttr(attrData, "", 0, 0, 2*seedCluster, []byte{0x11, 0x01, 0x03, 0})
	binary.LittleEndian.PutUint16(piece0[14:], 5)
	piece1 := nonResidentAttr(attrData, "", 1, 1, 0, []byte{0x11, 0x01, 0x02, 0})
	binary.LittleEndian.PutUint16(piece1[14:], 7)
	base := makeRecord(seedRecord, residentAttr(0x10, "", make([]byte, 48)), residentAttr(attrAttributeList, "", entries), piece0)
	ext := makeRecord(seedRecord, piece1)
	binary.LittleEndian.PutUint64(ext[32:], recBitmap|1<<48) // its base record
	copy(seed[seedMFT+recBitmap*seedRecord:], base)
	copy(seed[seedMFT+16*seedRecord:], ext)
	return seed, size
}

// TestSeeds checks that the crafted seeds probe as the image does.
func TestSeeds(t *testing.T) {
	img := testImage(t)
	want, err := probeBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	for name, mk := range map[string]func(testing.TB) ([]byte, int64){"compact": compactSeed, "attribute list": attrListSeed} {
		seed, size := mk(t)
		got, err := Probe(zeroPadded{seed, size}, size)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Label != want.Label || got.UsedBytes() != want.UsedBytes() {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

// FuzzProbe probes the start of a partition, as it is and zero-padded to a
// claimed size: an error or a sane allocation, never a panic.
func FuzzProbe(f *testing.F) {
	img := testImage(f)
	compact, size := compactSeed(f)
	list, _ := attrListSeed(f)
	f.Add(compact, size)
	f.Add(list, size)
	f.Add(img[:512], size)
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		if a, err := probeBytes(data); err == nil {
			checkInvariants(t, a, int64(len(data)))
		}
		size = min(max(size, int64(len(data))), fuzzMaxSize)
		if a, err := Probe(zeroPadded{data, size}, size); err == nil {
			checkInvariants(t, a, size)
		}
	})
}

// FuzzMFTRecord parses MFT records, then reads every non-resident
// attribute's data through its runs from a small volume: an error or
// consistent attributes, never a panic.
func FuzzMFTRecord(f *testing.F) {
	compact, _ := compactSeed(f)
	list, _ := attrListSeed(f)
	for _, n := range []int{0, 3, 5, 6, 16} {
		f.Add(bytes.Clone(compact[seedMFT+n*seedRecord:][:seedRecord]))
	}
	f.Add(bytes.Clone(list[seedMFT+recBitmap*seedRecord:][:seedRecord]))
	f.Add(makeRecord(4096, residentAttr(attrData, "ads", []byte("x")), nonResidentAttr(attrData, "", 0, 3, 10000, []byte{0x11, 0x02, 0x05, 0x01, 0x02, 0})))
	vol := &volume{r: bytes.NewReader(make([]byte, 64*512)), sectorSize: 512, clusterSize: 512, clusters: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseRecord(b)
		if err != nil {
			return
		}
		for _, a := range rec.Attrs {
			if a.Type == attrAttributeList && !a.NonResident {
				parseAttrList(a.Value)
			}
			if !a.NonResident {
				continue
			}
			checkRuns(t, a.Runs, a.LowVCN)
			if rr, err := vol.newRunReader(a.Runs, min(a.DataSize, 1<<15), a.InitSize); err == nil {
				buf := make([]byte, rr.Size())
				if _, err := rr.ReadAt(buf, 0); err != nil && err != io.EOF && !errors.Is(err, errHole) {
					t.Fatalf("read: %v", err)
				}
			}
		}
	})
}

// checkRuns checks decodeRunlist's promises: runs back to back from start,
// none empty, LCNs inside the bound or sparse.
func checkRuns(t *testing.T, runs []run, start int64) {
	t.Helper()
	vcn := start
	for _, r := range runs {
		if r.VCN != vcn || r.Len <= 0 || r.VCN+r.Len > maxClusters ||
			(r.LCN != sparse && (r.LCN < 0 || r.LCN+r.Len > maxClusters)) {
			t.Fatalf("run %+v after VCN %d", r, vcn)
		}
		vcn += r.Len
	}
}

// FuzzRunlist decodes runlists and reads through them, at a fuzzed offset,
// from a volume of 256 zero clusters of 512 bytes to 2 MiB.
func FuzzRunlist(f *testing.F) {
	for _, s := range [][]byte{
		{0x11, 0x13, 0x04, 0}, // $MFT of the test image
		{0x11, 0x01, 0x47, 0}, // its $Bitmap
		{0x21, 0x18, 0x34, 0x56, 0x11, 0x04, 0xF0, 0x01, 0x10, 0x31, 0x02, 0x00, 0x00, 0x01, 0},
		{0x48, 1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0},
		{0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x11, 0x01, 0x05, 0}, // a huge hole
	} {
		f.Add(s, int64(0), int64(0), uint8(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, start, off int64, shift uint8) {
		runs, err := decodeRunlist(b, start)
		if err != nil {
			return
		}
		checkRuns(t, runs, start)
		if len(runs) == 0 || start != 0 {
			return
		}
		cs := int64(512) << (shift % 13)
		vol := &volume{r: zeroPadded{nil, 256 * cs}, sectorSize: 512, clusterSize: cs, clusters: 256}
		last := runs[len(runs)-1]
		size := min(last.VCN+last.Len, (1<<62)/cs) * cs
		rr, err := vol.newRunReader(runs, size, size)
		if err != nil {
			return
		}
		buf := make([]byte, 3000)
		if off < 0 {
			off = -(off + 1)
		}
		for _, o := range []int64{0, off % size, max(size-1000, 0)} {
			if _, err := rr.ReadAt(buf, o); err != nil && err != io.EOF {
				t.Fatalf("read at %d: %v", o, err)
			}
		}
	})
}
