//go:build linux

package ext

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cairn/internal/fs"
)

// seedImage is a prefix of a real filesystem image from testdata (see
// testdata/mkseeds.sh), read as a partition of size bytes: zeros after it.
type seedImage struct {
	name string
	data []byte
	size int64
}

var seedImages = []struct {
	file string
	size int64
}{
	{"ext4-head.img.gz", 16 << 20},
	{"ext4-recover.img.gz", 4 << 20},
	{"ext3-recover.img.gz", 4 << 20},
}

func loadSeeds(t testing.TB) []seedImage {
	t.Helper()
	var out []seedImage
	for _, s := range seedImages {
		gz, err := os.ReadFile(filepath.Join("testdata", s.file))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, seedImage{strings.TrimSuffix(s.file, ".img.gz"), data, s.size})
	}
	return out
}

// padded reads data followed by zeros, as a partition of size bytes.
type padded struct {
	data []byte
	size int64
}

func (p padded) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= p.size {
		return 0, io.EOF
	}
	n := len(b)
	if int64(n) > p.size-off {
		n = int(p.size - off)
	}
	clear(b[:n])
	if off < int64(len(p.data)) {
		copy(b[:n], p.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// checkAllocation checks what holds for any allocation Probe returns, even
// from damaged input: a known type, a sane block size, a size inside the
// partition, and used extents sorted, merged, block-aligned and inside it.
func checkAllocation(t testing.TB, a *fs.Allocation, size int64) {
	t.Helper()
	if a.Type != "ext2" && a.Type != "ext3" && a.Type != "ext4" {
		t.Fatalf("type %q", a.Type)
	}
	if a.BlockSize < 1024 || a.BlockSize > 65536 || a.BlockSize&(a.BlockSize-1) != 0 {
		t.Fatalf("block size %d", a.BlockSize)
	}
	if a.Size <= 0 || a.Size > size || a.Size%int64(a.BlockSize) != 0 {
		t.Fatalf("size %d in a partition of %d", a.Size, size)
	}
	end := int64(-1)
	for _, e := range a.Used {
		if e.Len <= 0 || e.Off <= end || e.Off+e.Len > a.Size || e.Off%int64(a.BlockSize) != 0 || e.Len%int64(a.BlockSize) != 0 {
			t.Fatalf("extent %+v after %d in %d bytes", e, end, a.Size)
		}
		end = e.Off + e.Len
	}
	if len(a.Used) == 0 || a.Used[0].Off != 0 {
		t.Fatalf("boot block and superblock not used: %v", a.Used)
	}
	end = -1
	for _, e := range a.Unneeded {
		if e.Len <= 0 || e.Off <= end || e.Off%int64(a.BlockSize) != 0 || e.Len%int64(a.BlockSize) != 0 {
			t.Fatalf("unneeded extent %+v after %d", e, end)
		}
		end = e.Off + e.Len
	}
	if len(fs.Subtract(a.Unneeded, a.Used)) != 0 {
		t.Fatalf("unneeded extents %v outside the used ones", fs.Subtract(a.Unneeded, a.Used))
	}
	if len(a.Unneeded) > 0 && a.Unneeded[0].Off < superblockOffset+superblockSize {
		t.Fatalf("the superblock is unneeded: %v", a.Unneeded)
	}
}

func TestProbeSeeds(t *testing.T) {
	for _, s := range loadSeeds(t) {
		t.Run(s.name, func(t *testing.T) {
			a, err := Probe(padded{s.data, s.size}, s.size)
			if err != nil {
				t.Fatal(err)
			}
			checkAllocation(t, a, s.size)
			if a.Size != s.size {
				t.Errorf("size %d, want %d", a.Size, s.size)
			}
			if s.name == "ext4-head" && (a.Label != "seed" || a.UUID != "5f1b3c2a-8d4e-4f6a-9b7c-1e2d3f4a5b6c" || a.Type != "ext4") {
				t.Errorf("got %q %q %q", a.Type, a.Label, a.UUID)
			}
			// The fuzzer's seed, only the bytes Probe reads, gives the
			// same allocation.
			a2, err := Probe(sparseImage{records(seedRecords(t, s)), s.size}, s.size)
			if err != nil {
				t.Fatalf("the fuzz seed: %v", err)
			}
			if !slices.Equal(a.Used, a2.Used) {
				t.Fatalf("the fuzz seed: %v, the image: %v", a2.Used, a.Used)
			}
		})
	}
}

// TestProbeSeedJournal checks on the seeds that need recovery that the
// journal's bitmaps add blocks to those of the bitmaps in place.
func TestProbeSeedJournal(t *testing.T) {
	for _, s := range loadSeeds(t)[1:] {
		f, err := open(padded{s.data, s.size}, s.size)
		if err != nil {
			t.Fatal(err)
		}
		if !f.sb.incompat(incompatRecover) {
			t.Fatalf("%s: does not need recovery", s.name)
		}
		inPlace := &usedList{blockSize: f.blockSize, clusterRatio: f.clusterRatio}
		if err := f.addBitmaps(inPlace); err != nil {
			t.Fatal(err)
		}
		a, err := Probe(padded{s.data, s.size}, s.size)
		if err != nil {
			t.Fatal(err)
		}
		before := (&fs.Allocation{Used: fs.Normalize(inPlace.ext, f.fsSize())}).UsedBytes()
		if a.UsedBytes() <= before {
			t.Errorf("%s: %d bytes used with the journal, %d without", s.name, a.UsedBytes(), before)
		}
		t.Logf("%s: %d bytes used with the journal, %d by the bitmaps in place", s.name, a.UsedBytes(), before)
	}
}

// TestProbeCorrupt damages one structure at a time: each must be an error
// (fs.ErrUnknown only when there is no superblock), never a panic.
func TestProbeCorrupt(t *testing.T) {
	seeds := loadSeeds(t)
	rec := seeds[1] // ext4 with 1 KiB blocks, 64-byte descriptors, a journal to replay
	f, err := open(padded{rec.data, rec.size}, rec.size)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	sb := func(off int) int { return superblockOffset + off }
	gd := func(off int) int { return int(f.gdtBlock())*int(f.blockSize) + off } // group 0's descriptor
	jino := int(f.groups[0].inodeTable)*int(f.blockSize) + 7*int(f.inodeSize)
	jin, err := f.readInode(8)
	if err != nil {
		t.Fatal(err)
	}
	jmap, err := f.blockMap(jin, jin.size/uint64(f.blockSize))
	if err != nil {
		t.Fatal(err)
	}
	jsb := int(jmap[0].physical) * int(f.blockSize)

	cases := []struct {
		name    string
		size    int64 // 0: the seed's
		damage  func(b []byte)
		unknown bool
		reader  func(b []byte, size int64) io.ReaderAt
	}{
		{name: "tiny partition", size: 1500, unknown: true},
		{name: "bad magic", damage: func(b []byte) { b[sb(0x38)] = 0 }, unknown: true},
		{name: "truncated partition", size: 2 << 20},
		{name: "reader ends early", reader: func(b []byte, size int64) io.ReaderAt { return padded{b[:64<<10], 64 << 10} }},
		{name: "reader fails", reader: func(b []byte, size int64) io.ReaderAt { return failing{padded{b, size}, 8192} }},
		{name: "block size 128K", damage: func(b []byte) { le.PutUint32(b[sb(0x18):], 7) }},
		{name: "block size huge", damage: func(b []byte) { le.PutUint32(b[sb(0x18):], 40) }},
		{name: "blocks per group 0", damage: func(b []byte) { le.PutUint32(b[sb(0x20):], 0); le.PutUint32(b[sb(0x24):], 0) }},
		{name: "blocks per group 8", damage: func(b []byte) { le.PutUint32(b[sb(0x20):], 8); le.PutUint32(b[sb(0x24):], 8) }},
		{name: "blocks per group odd", damage: func(b []byte) { le.PutUint32(b[sb(0x20):], 8191); le.PutUint32(b[sb(0x24):], 8191) }},
		{name: "blocks per group too many", damage: func(b []byte) { le.PutUint32(b[sb(0x20):], 1<<20); le.PutUint32(b[sb(0x24):], 1<<20) }},
		{name: "huge group count", damage: func(b []byte) {
			le.PutUint32(b[sb(0x20):], 256)
			le.PutUint32(b[sb(0x24):], 256)
			le.PutUint32(b[sb(0x28):], 1) // inodes_per_group
			le.PutUint32(b[sb(0x00):], 16)
		}},
		{name: "huge block count", damage: func(b []byte) { le.PutUint32(b[sb(0x04):], 0xFFFFFFFF) }},
		{name: "huge block count high", damage: func(b []byte) { le.PutUint32(b[sb(0x150):], 1) }},
		{name: "no blocks", damage: func(b []byte) { le.PutUint32(b[sb(0x04):], 1) }},
		{name: "first data block", damage: func(b []byte) { le.PutUint32(b[sb(0x14):], 5) }},
		{name: "inode count", damage: func(b []byte) { le.PutUint32(b[sb(0x00):], 12345) }},
		{name: "inodes per group 0", damage: func(b []byte) { le.PutUint32(b[sb(0x28):], 0) }},
		{name: "inode size", damage: func(b []byte) { le.PutUint16(b[sb(0x58):], 100) }},
		{name: "descriptor size", damage: func(b []byte) { le.PutUint16(b[sb(0xFE):], 48) }},
		{name: "descriptor size huge", damage: func(b []byte) { le.PutUint16(b[sb(0xFE):], 2048) }},
		{name: "unknown incompat feature", damage: func(b []byte) { b[sb(0x60)+3] |= 0x80 }},
		{name: "meta_bg past the table", damage: func(b []byte) { b[sb(0x60)] |= incompatMetaBG; le.PutUint32(b[sb(0x104):], 9) }},
		{name: "reserved GDT past the end", damage: func(b []byte) { le.PutUint16(b[sb(0xCE):], 60000) }},
		{name: "block bitmap past the end", damage: func(b []byte) { le.PutUint32(b[gd(0x00):], 0xFFFFFF00) }},
		{name: "block bitmap high half", damage: func(b []byte) { le.PutUint32(b[gd(0x20):], 1) }},
		{name: "block bitmap at 0", damage: func(b []byte) { le.PutUint32(b[gd(0x00):], 0) }},
		{name: "inode bitmap past the end", damage: func(b []byte) { le.PutUint32(b[gd(0x04):], 4096) }},
		{name: "inode table past the end", damage: func(b []byte) { le.PutUint32(b[gd(0x08):], 4090) }},
		{name: "journal inode extents", damage: func(b []byte) { clear(b[jino+0x28 : jino+0x28+60]) }},
		{name: "journal extent past the end", damage: func(b []byte) { le.PutUint32(b[jino+0x28+12+8:], 0xFFFFFF) }},
		{name: "journal superblock", damage: func(b []byte) { b[jsb] = 0 }},
		{name: "journal block size", damage: func(b []byte) { binary.BigEndian.PutUint32(b[jsb+0x0C:], 4096) }},
		{name: "journal longer than its inode", damage: func(b []byte) { binary.BigEndian.PutUint32(b[jsb+0x10:], 1<<20) }},
		{name: "journal log start", damage: func(b []byte) { binary.BigEndian.PutUint32(b[jsb+0x1C:], 5000) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := slices.Clone(rec.data)
			size := rec.size
			if c.size != 0 {
				size = c.size
			}
			if c.damage != nil {
				c.damage(b)
			}
			var r io.ReaderAt = padded{b, size}
			if c.reader != nil {
				r = c.reader(b, size)
			}
			a, err := Probe(r, size)
			if err == nil {
				t.Fatalf("no error; %d bytes used in %d extents", a.UsedBytes(), len(a.Used))
			}
			if a != nil {
				t.Fatal("an allocation with the error")
			}
			if errors.Is(err, fs.ErrUnknown) != c.unknown {
				t.Fatalf("error %q: unknown=%v, want %v", err, !c.unknown, c.unknown)
			}
			t.Log(err)
		})
	}
}

// failing fails every read that reaches past byte limit.
type failing struct {
	r     io.ReaderAt
	limit int64
}

func (f failing) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > f.limit {
		return 0, errors.New("injected read error")
	}
	return f.r.ReadAt(b, off)
}

// TestProbeEveryByte damages every byte of the superblock, the first group
// descriptors, the journal inode and the journal's first blocks in turn: no
// panic, and any allocation Probe still returns is well formed.
func TestProbeEveryByte(t *testing.T) {
	for _, s := range loadSeeds(t)[1:] {
		f, err := open(padded{s.data, s.size}, s.size)
		if err != nil {
			t.Fatal(err)
		}
		jin, err := f.readInode(8)
		if err != nil {
			t.Fatal(err)
		}
		jmap, err := f.blockMap(jin, jin.size/uint64(f.blockSize))
		if err != nil {
			t.Fatal(err)
		}
		bs := int(f.blockSize)
		jino := int(f.groups[0].inodeTable)*bs + 7*int(f.inodeSize)
		ranges := [][2]int{
			{superblockOffset, superblockOffset + 0x260},
			{int(f.gdtBlock()) * bs, int(f.gdtBlock())*bs + 128},
			{jino, jino + 128},
			{int(jmap[0].physical) * bs, int(jmap[0].physical)*bs + 64},
			{int(jmap[0].physical+1) * bs, int(jmap[0].physical+1)*bs + 256},
		}
		b := slices.Clone(s.data)
		for _, rg := range ranges {
			for off := rg[0]; off < rg[1]; off++ {
				orig := b[off]
				for _, v := range []byte{0, 0xFF, orig ^ 1, orig ^ 0x80} {
					b[off] = v
					if a, err := Probe(padded{b, s.size}, s.size); err == nil {
						checkAllocation(t, a, s.size)
					}
				}
				b[off] = orig
			}
		}
	}
}

// TestBitRuns compares bitRuns with a bit-by-bit reading on random bitmaps of
// every length around word boundaries.
func TestBitRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		bitmap := make([]byte, 1+rng.IntN(40))
		for i := range bitmap {
			switch rng.IntN(3) {
			case 0:
				bitmap[i] = 0
			case 1:
				bitmap[i] = 0xFF
			default:
				bitmap[i] = byte(rng.Uint32())
			}
		}
		nbits := rng.IntN(8*len(bitmap) + 10)
		got := make([]bool, 8*len(bitmap))
		last := -1
		bitRuns(bitmap, nbits, func(start, n int) {
			if start <= last || n <= 0 {
				t.Fatalf("trial %d: run %d+%d after %d", trial, start, n, last)
			}
			last = start + n
			for i := start; i < start+n; i++ {
				got[i] = true
			}
		})
		for i := range got {
			want := i < nbits && bitmap[i/8]>>(i%8)&1 == 1
			if got[i] != want {
				t.Fatalf("trial %d: bit %d of %d: got %v", trial, i, nbits, got[i])
			}
		}
	}
}

// TestProbeNotExt checks that other content is fs.ErrUnknown.
func TestProbeNotExt(t *testing.T) {
	for _, size := range []int64{0, 1024, 2047, 2048, 1 << 20} {
		if _, err := Probe(padded{nil, size}, size); !errors.Is(err, fs.ErrUnknown) {
			t.Errorf("%d zero bytes: %v", size, err)
		}
	}
}

// TestProbeEmptyJournal checks that the journal's log, all its blocks but
// the first, is unneeded once the journal is empty, and that everything that
// may leave something to replay makes all of it needed: a log that starts
// somewhere, a filesystem flagged needs_recovery, fast commits, a journal
// superblock that does not read. The journals are the recovery seeds' (ext4
// with extents, ext3 with indirect blocks), made empty as a clean unmount
// leaves them: needs_recovery cleared and s_start 0.
func TestProbeEmptyJournal(t *testing.T) {
	be, le := binary.BigEndian, binary.LittleEndian
	for _, s := range loadSeeds(t)[1:] {
		t.Run(s.name, func(t *testing.T) {
			clean := slices.Clone(s.data)
			clean[superblockOffset+0x60] &^= incompatRecover
			f, err := open(padded{clean, s.size}, s.size)
			if err != nil {
				t.Fatal(err)
			}
			jin, err := f.readInode(8)
			if err != nil {
				t.Fatal(err)
			}
			jmap, err := f.blockMap(jin, jin.size/uint64(f.blockSize))
			if err != nil {
				t.Fatal(err)
			}
			jsb := int64(jmap[0].physical) * f.blockSize
			be.PutUint32(clean[jsb+0x1C:], 0) // s_start: the log is empty
			maxLen := uint64(be.Uint32(clean[jsb+0x10:]))
			var want []fs.Extent
			for l := uint64(1); l < maxLen; l++ {
				p, ok := jmap.lookup(l)
				if !ok {
					t.Fatalf("journal block %d not mapped", l)
				}
				want = append(want, fs.Extent{Off: int64(p) * f.blockSize, Len: f.blockSize})
			}
			want = fs.Normalize(want, s.size)

			cases := []struct {
				name   string
				damage func(b []byte)
				empty  bool
			}{
				{name: "empty", damage: func([]byte) {}, empty: true},
				{name: "log starts", damage: func(b []byte) { be.PutUint32(b[jsb+0x1C:], be.Uint32(b[jsb+0x14:])) }},
				{name: "needs_recovery", damage: func(b []byte) { b[superblockOffset+0x60] |= incompatRecover }},
				{name: "fast commits", damage: func(b []byte) {
					be.PutUint32(b[jsb+0x28:], be.Uint32(b[jsb+0x28:])|jbdIncompatFastCommit)
				}},
				{name: "journal superblock magic", damage: func(b []byte) { b[jsb] ^= 0xFF }},
				{name: "no journal feature", damage: func(b []byte) {
					le.PutUint32(b[superblockOffset+0x5C:], le.Uint32(b[superblockOffset+0x5C:])&^compatHasJournal)
				}},
				{name: "external journal", damage: func(b []byte) { le.PutUint32(b[superblockOffset+0xE0:], 0) }},
			}
			for _, c := range cases {
				b := slices.Clone(clean)
				c.damage(b)
				a, err := Probe(padded{b, s.size}, s.size)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				checkAllocation(t, a, s.size)
				if c.empty {
					if !slices.Equal(a.Unneeded, want) {
						t.Fatalf("%s: unneeded %v, want the log %v", c.name, a.Unneeded, want)
					}
					if got := fs.Subtract(a.Used, a.Stored()); !slices.Equal(got, want) {
						t.Fatalf("%s: stored leaves out %v, want %v", c.name, got, want)
					}
				} else if len(a.Unneeded) != 0 {
					t.Fatalf("%s: unneeded %v", c.name, a.Unneeded)
				}
			}
		})
	}
}
