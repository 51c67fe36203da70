package disk

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// sparseDisk is a disk of size bytes whose head and tail are given and whose
// middle reads as zeros; overlays written later win.
type sparseDisk struct {
	size     int64
	overlays []Region
}

func newSparseDisk(size int64, head, tail []byte) *sparseDisk {
	d := &sparseDisk{size: size}
	if n := min(int64(len(tail)), size); n > 0 {
		d.overlays = append(d.overlays, Region{size - n, tail[int64(len(tail))-n:]})
	}
	if n := min(int64(len(head)), size); n > 0 {
		d.overlays = append(d.overlays, Region{0, head[:n]})
	}
	return d
}

func (d *sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	clear(p[:n])
	for _, r := range d.overlays {
		lo, hi := max(off, r.Off), min(off+int64(n), r.Off+int64(len(r.Data)))
		if lo < hi {
			copy(p[lo-off:hi-off], r.Data[lo-r.Off:hi-r.Off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fixCRCs recomputes the CRCs of the GPT headers at LBA 1 and at the last
// LBA, so that fuzzing gets past them.
func (d *sparseDisk) fixCRCs() {
	le := binary.LittleEndian
	for _, lba := range []int64{1, d.size/512 - 1} {
		h := make([]byte, 512)
		if lba < 1 || d.read(h, lba*512) < 512 || string(h[:8]) != gptSignature {
			continue
		}
		if hs := le.Uint32(h[12:]); hs < 92 || hs > 512 {
			continue
		}
		if n := uint64(le.Uint32(h[80:])) * uint64(le.Uint32(h[84:])); n <= maxEntryBytes {
			e := make([]byte, n)
			if off := le.Uint64(h[72:]); off < 1<<40 {
				d.read(e, int64(off)*512)
			}
			le.PutUint32(h[88:], crc32.ChecksumIEEE(e))
		}
		le.PutUint32(h[16:], headerCRC(h))
		d.overlays = append(d.overlays, Region{lba * 512, h})
	}
}

// read reads like ReadAt and returns how many bytes it read.
func (d *sparseDisk) read(p []byte, off int64) int {
	n, _ := d.ReadAt(p, off)
	return n
}

// resized returns a disk of size bytes with d's bytes and regions over them.
func (d *sparseDisk) resized(size int64, regions []Region) *sparseDisk {
	n := &sparseDisk{size: size}
	for _, r := range d.overlays {
		if r.Off < size {
			n.overlays = append(n.overlays, Region{r.Off, r.Data[:min(int64(len(r.Data)), size-r.Off)]})
		}
	}
	n.overlays = append(n.overlays, regions...)
	return n
}

// checkTable checks what must hold for every table ReadTable returns from d:
// sane partitions and layout, an Encode that reads back the same (and gives
// the disk's own bytes when nothing was wrong), and a Resize that does too.
func checkTable(t *testing.T, tab *Table, d *sparseDisk) {
	for i, p := range tab.Partitions {
		if p.Start < 0 || p.Size <= 0 || p.End() > d.size || (i > 0 && p.Number <= tab.Partitions[i-1].Number) {
			t.Fatalf("bad partition %+v on a disk of %d", p, d.size)
		}
	}
	table, gaps := tab.Layout()
	var covered int64
	for _, es := range [][]Extent{table, gaps} {
		for i, e := range es {
			if e.Len <= 0 || e.Off < 0 || e.Off+e.Len > d.size || (i > 0 && es[i-1].Off+es[i-1].Len >= e.Off) {
				t.Fatalf("bad layout %v %v", table, gaps)
			}
		}
	}
	for _, g := range gaps {
		covered += g.Len
		for _, p := range tab.Partitions {
			if !p.Extended && g.Off < p.End() && p.Start < g.Off+g.Len {
				t.Fatalf("gap %v overlaps partition %+v", g, p)
			}
		}
	}
	var used []Extent
	for _, p := range tab.Partitions {
		if !p.Extended {
			used = append(used, Extent{p.Start, p.Size})
		}
	}
	for _, u := range normalize(used, d.size) {
		covered += u.Len
	}
	if covered != d.size {
		t.Fatalf("gaps and partitions cover %d bytes of %d", covered, d.size)
	}

	regions, err := tab.Encode()
	if err != nil {
		t.Fatalf("encode: %v\n%+v", err, tab)
	}
	if len(tab.Warnings) == 0 {
		for _, r := range regions {
			b := make([]byte, len(r.Data))
			d.ReadAt(b, r.Off)
			if !bytes.Equal(b, r.Data) {
				t.Fatalf("unchanged table encodes region at %d differently", r.Off)
			}
		}
	}
	sameTable(t, tab, d.resized(d.size, regions))

	if len(tab.Partitions) == 0 {
		return
	}
	grow := tab.Partitions[0].Number
	nt, err := tab.Resize(2*d.size+3*mib, grow)
	if err != nil {
		return // an extended partition, or the MBR's limits
	}
	regions, err = nt.Encode()
	if err != nil {
		t.Fatalf("encode resized: %v", err)
	}
	sameTable(t, nt, d.resized(nt.DiskSize, regions))
}

// sameTable checks that the table read from d is tab.
func sameTable(t *testing.T, tab *Table, d *sparseDisk) {
	back, err := ReadTable(d, d.size, tab.SectorSize)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if back.Type != tab.Type || back.DiskID != tab.DiskID || !slices.Equal(back.Partitions, tab.Partitions) ||
		(tab.GPT != nil && *back.GPT != *tab.GPT) {
		t.Fatalf("read back differs:\n%+v\n%+v", back, tab)
	}
}

// seedImage adds the first and last sectors (those of the table) of an image
// made by a command as seeds, and the same with damage.
func seedImage(f *testing.F, name string, args ...string) {
	img := filepath.Join(f.TempDir(), "seed.img")
	if os.WriteFile(img, nil, 0o644) != nil || os.Truncate(img, 256*mib) != nil {
		return
	}
	cmd := exec.Command(name, append(args[1:], img)...)
	cmd.Stdin = bytes.NewReader([]byte(args[0]))
	if cmd.Run() != nil {
		return
	}
	fl, err := os.Open(img)
	if err != nil {
		return
	}
	defer fl.Close()
	// The table's regions at the start and the end of the disk, no more:
	// smaller inputs fuzz faster.
	tab, err := ReadTable(fl, 256*mib, 512)
	if err != nil {
		return
	}
	table, _ := tab.Layout()
	head, tail := make([]byte, table[0].Len), make([]byte, 512)
	if last := table[len(table)-1]; last.Off+last.Len == 256*mib {
		tail = make([]byte, last.Len)
	}
	if _, err := fl.ReadAt(head, 0); err != nil {
		return
	}
	if _, err := fl.ReadAt(tail, 256*mib-int64(len(tail))); err != nil {
		return
	}
	f.Add(head, tail, uint16(256), false)
	// The same with the primary GPT header damaged, and with the backup damaged.
	h := bytes.Clone(head)
	if len(h) > 520 {
		h[520] ^= 1
	}
	f.Add(h, tail, uint16(256), true)
	tl := bytes.Clone(tail)
	tl[12] ^= 1
	f.Add(head, tl, uint16(256), false)
}

// FuzzReadTable reads tables from disks whose first and last bytes are
// fuzzed, of sizeMiB MiB (0: as small as the data), with the GPT CRCs made
// right if fixCRCs.
func FuzzReadTable(f *testing.F) {
	seedImage(f, "sgdisk", "", "-n1:1M:+64M", "-t1:ef00", "-c1:EFI", "-n2:0:+100M", "-t2:0700", "-n3:0:0", "-t3:2700", "-A", "3:set:0")
	seedImage(f, "sfdisk", "label: dos\n,32M,6,*\n,64M,83\n,1M,5\n,,83\n")
	f.Add([]byte{}, []byte{}, uint16(0), false)
	f.Fuzz(func(t *testing.T, head, tail []byte, sizeMiB uint16, fixCRCs bool) {
		size := int64(sizeMiB%4096) * mib
		if size == 0 {
			size = int64(len(head) + len(tail))
		}
		d := newSparseDisk(size, head, tail)
		if fixCRCs {
			d.fixCRCs()
		}
		tab, err := ReadTable(d, size, 512)
		if err != nil {
			return
		}
		checkTable(t, tab, d)
	})
}

// ebrDisk makes a 64-sector disk whose sectors 1-63 are an extended
// partition; chunk k of data (32 bytes: two partition entries) becomes the
// EBR at LBA 1+k.
func ebrDisk(extType byte, data []byte) *sparseDisk {
	const sectors = 64
	img := make([]byte, sectors*512)
	putMBREntry(img[446:], mbrEntry{typ: extType, start: 1, size: sectors - 1})
	img[510], img[511] = 0x55, 0xAA
	for k := 0; k+1 < sectors && len(data) > 0; k++ {
		sec := img[(k+1)*512 : (k+2)*512]
		data = data[copy(sec[446:478], data):]
		sec[510], sec[511] = 0x55, 0xAA
	}
	return newSparseDisk(sectors*512, img, nil)
}

// ebrChunk encodes a logical partition at rel (relative to its EBR) of size
// sectors, and a link to the EBR at next (relative to the extended
// partition; 0 for none).
func ebrChunk(rel, size, next uint32) []byte {
	b := make([]byte, 32)
	b[4] = 0x83
	binary.LittleEndian.PutUint32(b[8:], rel)
	binary.LittleEndian.PutUint32(b[12:], size)
	if next != 0 {
		b[20] = 0x05
		binary.LittleEndian.PutUint32(b[24:], next)
		binary.LittleEndian.PutUint32(b[28:], 4)
	}
	return b
}

func FuzzEBRChain(f *testing.F) {
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	f.Add(byte(0x05), cat(ebrChunk(1, 3, 4), make([]byte, 32*3), ebrChunk(1, 3, 0)))
	f.Add(byte(0x0f), cat(ebrChunk(1, 2, 2), make([]byte, 32), ebrChunk(1, 2, 0)))
	loop := ebrChunk(1, 2, 0)
	loop[20], loop[28] = 0x05, 4 // a link to LBA 0 of the extended partition: itself
	f.Add(byte(0x05), loop)
	f.Add(byte(0x05), cat(ebrChunk(1, 1, 2), make([]byte, 32), ebrChunk(1, 1, 0xfffffffe))) // out of the extended partition
	f.Add(byte(0x85), cat(ebrChunk(1, 1, 2), make([]byte, 32), ebrChunk(1, 1, 0)))
	f.Fuzz(func(t *testing.T, extType byte, data []byte) {
		if extType == 0xEE {
			return // a protective MBR
		}
		d := ebrDisk(extType, data)
		tab, err := ReadTable(d, d.size, 512)
		if err != nil {
			t.Fatalf("a valid MBR with a damaged chain should read: %v", err)
		}
		if !isExtended(extType) {
			return
		}
		ext := tab.partition(1)
		for i, p := range tab.Partitions[1:] {
			if p.Number != 5+i || p.Start <= ext.Start || p.End() > ext.End() {
				t.Fatalf("logical partition %+v outside %+v", p, ext)
			}
		}
		checkTable(t, tab, d)
	})
}
