//go:build linux

package ext

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	cfs "cairn/internal/fs"
)

// Tests and the fuzz target of the file reader on damaged input. They start
// from the small real filesystems in testdata (see testdata/mkfileseeds.sh).

var fileSeedNames = []string{"ext4-files.img.gz", "ext4-inline-files.img.gz", "ext2-files.img.gz"}

// loadFileSeeds returns the images of fileSeedNames, each read as a
// partition of its own size.
func loadFileSeeds(t testing.TB) []seedImage {
	t.Helper()
	var out []seedImage
	for _, name := range fileSeedNames {
		gz, err := os.ReadFile(filepath.Join("testdata", name))
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
		out = append(out, seedImage{strings.TrimSuffix(name, ".img.gz"), data, int64(len(data))})
	}
	return out
}

// walkLimits bounds a walk of a damaged filesystem.
type walkLimits struct {
	entries int   // entries listed
	bytes   int64 // content bytes read, in all
	perFile int   // content bytes read of one file, at its start and its end
}

// walkResult is what a walk met.
type walkResult struct {
	entries int
	bytes   int64
	errs    []error
}

// walkReader walks every folder of rd from the root, breadth first, and reads
// every file's start and end, within limits. It checks what must hold even on
// damaged input: sorted, valid, distinct names; known types; reads that
// return what they say. Errors the reader returns are collected, not fatal.
func walkReader(t testing.TB, rd cfs.Reader, lim walkLimits) walkResult {
	t.Helper()
	var res walkResult
	root, err := rd.Root()
	if err != nil {
		res.errs = append(res.errs, err)
		return res
	}
	if root == nil {
		t.Fatal("Root: no entry and no error")
	}
	queue := []*cfs.Entry{root}
	buf := make([]byte, lim.perFile)
	for len(queue) > 0 && res.entries < lim.entries {
		dir := queue[0]
		queue = queue[1:]
		list, err := rd.ReadDir(dir)
		if err != nil {
			// The entries it could read, with the error.
			res.errs = append(res.errs, err)
		}
		for i, e := range list {
			if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
				t.Fatalf("ReadDir: name %q", e.Name)
			}
			if i > 0 && list[i-1].Name >= e.Name {
				t.Fatalf("ReadDir: %q before %q", list[i-1].Name, e.Name)
			}
			if e.Size < 0 || e.Mode&^0o7777 != 0 {
				t.Fatalf("%q: size %d, mode %o", e.Name, e.Size, e.Mode)
			}
			res.entries++
			switch e.Type {
			case cfs.TypeDir:
				queue = append(queue, e)
			case cfs.TypeFile:
				if res.bytes < lim.bytes {
					res.bytes += readSome(t, rd, e, buf, &res)
				}
			case cfs.TypeSymlink, cfs.TypeDev, cfs.TypeCharDev, cfs.TypeFIFO, cfs.TypeSocket:
			default:
				t.Fatalf("%q: type %q", e.Name, e.Type)
			}
		}
	}
	return res
}

// readSome reads len(buf) bytes of file e from its start and before its end,
// and returns the bytes read.
func readSome(t testing.TB, rd cfs.Reader, e *cfs.Entry, buf []byte, res *walkResult) int64 {
	r, err := rd.Open(e)
	if err != nil {
		res.errs = append(res.errs, err)
		return 0
	}
	var total int64
	for _, off := range []int64{0, max(e.Size-int64(len(buf))-1, 0)} {
		n, err := r.ReadAt(buf, off)
		if n < 0 || n > len(buf) {
			t.Fatalf("%q: ReadAt returned %d", e.Name, n)
		}
		want := int(min(int64(len(buf)), max(e.Size-off, 0)))
		switch {
		case err == nil && n != len(buf), err == io.EOF && n != want:
			t.Fatalf("%q: ReadAt(%d at %d) of a %d-byte file: %d, %v", e.Name, len(buf), off, e.Size, n, err)
		case err != nil && err != io.EOF:
			res.errs = append(res.errs, err)
		}
		total += int64(n)
	}
	return total
}

// fileSeedRecords returns the sparse image (records, as FuzzProbe's) of
// every byte a bounded walk of s reads, read a block at a time.
func fileSeedRecords(t testing.TB, s seedImage) []byte {
	t.Helper()
	rec := &recorder{r: padded{s.data, s.size}}
	rd, err := openReader(rec, s.size, 1024, 64)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	if res := walkReader(t, rd, fuzzLimits); len(res.errs) > 0 {
		t.Fatalf("%s: %v", s.name, res.errs)
	}
	var out []byte
	for _, e := range cfs.Normalize(rec.reads, s.size) {
		for off := e.Off; off < e.Off+e.Len; off += 1 << 15 {
			n := min(e.Off+e.Len-off, 1<<15)
			out = binary.LittleEndian.AppendUint32(out, uint32(off))
			out = binary.LittleEndian.AppendUint16(out, uint16(n))
			out = append(out, padded{s.data, s.size}.bytes(off, n)...)
		}
	}
	if len(records(out)) >= maxRecords {
		t.Fatalf("%s: %d records", s.name, len(records(out)))
	}
	return out
}

// fuzzLimits bounds the fuzz target's walks; reading little of each file
// keeps the seeds (what a walk reads) small.
var fuzzLimits = walkLimits{entries: 2000, bytes: 4 << 20, perFile: 2 << 10}

// FuzzReader opens damaged filesystems and walks them: every folder, the
// start and end of every file, within fuzzLimits. Each input is a sparse image
// as FuzzProbe's; the seeds are the bytes a walk of the real images in
// testdata reads, so mutations land in the structures the reader parses. The
// reader must never panic, hang or allocate without bound, and what it
// returns must be well formed.
func FuzzReader(f *testing.F) {
	for _, s := range loadFileSeeds(f) {
		f.Add(fileSeedRecords(f, s), uint32(s.size))
	}
	for _, s := range loadSeeds(f)[1:] { // journals to replay
		f.Add(fileSeedRecords(f, s), uint32(s.size))
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint32) {
		sz := int64(size % (64 << 20))
		rd, err := openReader(sparseImage{records(data), sz}, sz, 1024, 64)
		if err != nil {
			return
		}
		walkReader(t, rd, fuzzLimits)
	})
}

// TestReaderSeeds walks the seed images whole, without an error, and checks
// a few of their entries.
func TestReaderSeeds(t *testing.T) {
	for _, s := range loadFileSeeds(t) {
		t.Run(s.name, func(t *testing.T) {
			rd, err := Open(bytes.NewReader(s.data), s.size)
			if err != nil {
				t.Fatal(err)
			}
			res := walkReader(t, rd, walkLimits{entries: 1000, bytes: 1 << 30, perFile: 300 << 10})
			if len(res.errs) > 0 {
				t.Fatal(res.errs)
			}
			if res.entries < 100 {
				t.Fatalf("%d entries", res.entries)
			}
			root, _ := rd.Root()
			list, err := rd.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*cfs.Entry{}
			for _, e := range list {
				byName[e.Name] = e
			}
			for name, want := range map[string]string{"small": "small file\n", "far": "far away"} {
				e := byName[name]
				r, err := rd.Open(e)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(want))
				if _, err := r.ReadAt(got, e.Size-int64(len(want))); err != nil || string(got) != want {
					t.Errorf("%s: %q, %v", name, got, err)
				}
			}
			if e := byName["indirect"]; e.UID != 70000 || e.GID != 80000 || e.Mode != 0o4755 {
				t.Errorf("indirect: %d:%d %o", e.UID, e.GID, e.Mode)
			}
			if e := byName["disk"]; e.Type != cfs.TypeDev || e.Rdev != 259<<8|70000&0xFF|(70000&^0xFF)<<12 {
				t.Errorf("disk: %s %#x", e.Type, e.Rdev)
			}
			if e := byName["link"]; e.LinkTarget != "small" || e.MTime != -315521754_876543211 {
				t.Errorf("link: %q %d", e.LinkTarget, e.MTime)
			}
		})
	}
}

// TestReaderRecoverSeeds reads the images of testdata/mkseeds.sh copied while
// mounted: their files f1 to f8 are only in the journal, committed; the
// reader must replay it to find them, whole.
func TestReaderRecoverSeeds(t *testing.T) {
	for _, s := range loadSeeds(t)[1:] {
		t.Run(s.name, func(t *testing.T) {
			rd, err := openReader(padded{s.data, s.size}, s.size, cacheChunkSize, cacheChunks)
			if err != nil {
				t.Fatal(err)
			}
			if rd.overlay == nil {
				t.Fatal("no journal to replay")
			}
			root, _ := rd.Root()
			list, err := rd.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			fsName := strings.TrimSuffix(s.name, "-recover")
			found := 0
			for _, e := range list {
				var i int
				if _, err := fmt.Sscanf(e.Name, "f%d", &i); err != nil {
					continue
				}
				found++
				want := bytes.Repeat([]byte(fmt.Sprintf("%s %d\n", fsName, i)), i*20000)[:i*20000]
				r, err := rd.Open(e)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(io.NewSectionReader(r, 0, e.Size))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes, want %d (%v)", e.Name, len(got), len(want), err)
				}
			}
			if found != 8 {
				t.Errorf("%d files of 8 (%d blocks replayed)", found, len(rd.overlay.targets))
			}
		})
	}
}

// seedFS opens seed image s (a copy of its bytes, b) with the internal
// reader, to find where its structures are.
func seedFS(t *testing.T, b []byte) *reader {
	t.Helper()
	rd, err := openReader(bytes.NewReader(b), int64(len(b)), 1024, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// lookup returns the inode of the entry at path (from the root, no leading
// slash) in rd.
func lookup(t *testing.T, rd *reader, path string) *inode {
	t.Helper()
	e, err := rd.Root()
	if err != nil {
		t.Fatal(err)
	}
	if path == "" {
		return e.Sys.(*node).in
	}
	for name := range strings.SplitSeq(path, "/") {
		list, err := rd.ReadDir(e)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(e *cfs.Entry) bool { return e.Name == name })
		if i < 0 {
			t.Fatalf("no %s", path)
		}
		e = list[i]
	}
	return e.Sys.(*node).in
}

// locations finds, in a seed image, the byte offsets of the structures the
// corruption cases damage.
type locations struct {
	rd *reader
	bs int
}

// inode returns the offset of the inode at path.
func (l locations) inode(t *testing.T, path string) int {
	t.Helper()
	off, err := l.rd.f.inodeOffset(lookup(t, l.rd, path).num)
	if err != nil {
		t.Fatal(err)
	}
	return int(off)
}

// block returns the offset of logical block n of the file or folder at path.
func (l locations) block(t *testing.T, path string, n uint64) int {
	t.Helper()
	m := &blockMapper{r: l.rd, in: lookup(t, l.rd, path)}
	phys, _, mapped, err := m.find(n)
	if err != nil || !mapped {
		t.Fatalf("%s: block %d: %v %v", path, n, mapped, err)
	}
	return int(phys) * l.bs
}

// child returns the offset of the first child node of the extent tree root
// of the file at path.
func (l locations) child(t *testing.T, path string) int {
	t.Helper()
	in := lookup(t, l.rd, path)
	return int(binary.LittleEndian.Uint32(in.block[12+4:])) * l.bs
}

// dirent returns the offset of the entry named name in the folder at dir
// (in its first block).
func (l locations) dirent(t *testing.T, dir, name string) int {
	t.Helper()
	off := l.block(t, dir, 0)
	b := l.rd.f.r.(*bytes.Reader)
	blk := make([]byte, l.bs)
	if _, err := b.ReadAt(blk, int64(off)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+8 <= len(blk); {
		rec := int(binary.LittleEndian.Uint16(blk[i+4:]))
		if n := int(blk[i+6]); string(blk[i+8:i+8+n]) == name {
			return off + i
		}
		if rec == 0 {
			break
		}
		i += rec
	}
	t.Fatalf("no entry %s in %s", name, dir)
	return 0
}

// TestReaderCorrupt damages one structure at a time in the seed images:
// each must be an error naming the damage and the inode or path, not a
// panic, and the rest of the filesystem stays readable.
func TestReaderCorrupt(t *testing.T) {
	le := binary.LittleEndian
	type damage func(t *testing.T, l locations, b []byte)
	cases := []struct {
		name  string
		seed  int // index in fileSeedNames
		dmg   damage
		want  string // in the error
		open  bool   // the error is Open's
		size  int64  // the partition's size, if not the image's
		limit int64  // reads past this fail, if not 0
		// few: the damage costs a large folder (the root's only block),
		// not one entry.
		few bool
	}{
		{name: "truncated partition", size: 512 << 10, open: true, want: "larger than its partition"},
		{name: "reads fail past half", limit: 512 << 10, want: "injected read error"},
		{name: "first inode", open: true, want: "first inode", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[superblockOffset+0x54:], 3)
		}},
		{name: "root not a folder", few: true, want: "inode 2 (/): not a folder", dmg: func(t *testing.T, l locations, b []byte) {
			off, _ := l.rd.f.inodeOffset(2)
			le.PutUint16(b[off:], modeRegular|0o755)
		}},
		{name: "extent tree too deep", want: "inode 17 (/sparse): extent tree too deep", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.inode(t, "sparse")+0x28+6:], 6)
		}},
		{name: "extent root magic", want: "(/sparse): bad extent header magic", dmg: func(t *testing.T, l locations, b []byte) {
			b[l.inode(t, "sparse")+0x28] ^= 1
		}},
		{name: "extent root entries past max", want: "(/sparse): extent node of 9 entries", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.inode(t, "sparse")+0x28+2:], 9)
		}},
		{name: "extent tree cycle", want: "depth 1, want 0", dmg: func(t *testing.T, l locations, b []byte) {
			// The leaf becomes an index node pointing to itself.
			leaf := l.child(t, "sparse")
			le.PutUint16(b[leaf+6:], 1)
			le.PutUint32(b[leaf+12+4:], uint32(leaf/l.bs))
			le.PutUint16(b[leaf+12+8:], 0)
		}},
		{name: "extent node past the end", want: "(/sparse): extent node: blocks 4294967295+1 outside", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "sparse")+0x28+12+4:], 0xFFFFFFFF)
		}},
		{name: "extent past the end", want: "(/sparse): extent: blocks", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.child(t, "sparse")+12+6:], 7) // ee_start_hi
		}},
		{name: "extents overlap", want: "(/sparse): extents out of order or overlapping", dmg: func(t *testing.T, l locations, b []byte) {
			leaf := l.child(t, "sparse")
			le.PutUint32(b[leaf+24:], 0) // the second extent starts where the first does
		}},
		{name: "empty extent", want: "(/sparse): empty extent", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.child(t, "sparse")+12+4:], 0)
		}},
		{name: "huge file", want: "inode 16 (/double): size 18446744073709551615", dmg: func(t *testing.T, l locations, b []byte) {
			off := l.inode(t, "double")
			le.PutUint32(b[off+0x04:], 0xFFFFFFFF)
			le.PutUint32(b[off+0x6C:], 0xFFFFFFFF)
		}},
		{name: "file past its map", want: "(/double): size 281474976990656 larger than its block map can address", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "double")+0x6C:], 0x10000)
		}},
		{name: "huge folder", few: true, seed: 2, want: "(/hashed): folder of 4294966272 bytes is larger than the filesystem", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "hashed")+0x04:], 0xFFFFFC00)
		}},
		{name: "unused inode", want: "inode 13 (/small): unused inode", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.inode(t, "small")+0x1A:], 0)
		}},
		{name: "unknown file type", want: "inode 13 (/small): unknown file type", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.inode(t, "small"):], 0xE1A4)
		}},
		{name: "extra isize", want: "inode 13 (/small): 130 extra bytes", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.inode(t, "small")+0x80:], 130)
		}},
		{name: "rec_len 0", few: true, want: "inode 2 (/): folder block", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.dirent(t, "", "small")+4:], 0)
		}},
		{name: "rec_len past the block", few: true, want: "rec_len 2000 past the end", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.dirent(t, "", "small")+4:], 2000)
		}},
		{name: "rec_len odd", few: true, want: "rec_len 13", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint16(b[l.dirent(t, "", "small")+4:], 13)
		}},
		{name: "name_len past rec_len", few: true, want: "name_len 200 past rec_len", dmg: func(t *testing.T, l locations, b []byte) {
			b[l.dirent(t, "", "small")+6] = 200
		}},
		{name: "empty name", want: "empty name", dmg: func(t *testing.T, l locations, b []byte) {
			b[l.dirent(t, "", "small")+6] = 0
		}},
		{name: "name with a slash", want: `name "s/all" holds '/' or NUL`, dmg: func(t *testing.T, l locations, b []byte) {
			b[l.dirent(t, "", "small")+9] = '/'
		}},
		{name: "name with NUL", want: `holds '/' or NUL`, dmg: func(t *testing.T, l locations, b []byte) {
			b[l.dirent(t, "", "small")+10] = 0
		}},
		{name: "dot dot twice is skipped", want: "", dmg: func(t *testing.T, l locations, b []byte) {
			copy(b[l.dirent(t, "", "small")+6:], "\x02\x01..all")
		}},
		{name: "entry past the inodes", want: `inode 2 (/): entry "small" names inode 4000`, dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.dirent(t, "", "small"):], 4000)
		}},
		{name: "entry names a reserved inode", want: `entry "small" names inode 7`, dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.dirent(t, "", "small"):], 7)
		}},
		{name: "folder loop", want: "(/dir/sub): folder loop: it is also /", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.dirent(t, "dir", "sub"):], 2)
		}},
		{name: "two entries, one name", want: `(/): two entries named "small"`, dmg: func(t *testing.T, l locations, b []byte) {
			copy(b[l.dirent(t, "", "empty")+6:], "\x05\x01small")
		}},
		{name: "folder block twice", few: true, seed: 2, want: "(/hashed): folder block", dmg: func(t *testing.T, l locations, b []byte) {
			in := l.inode(t, "hashed")
			le.PutUint32(b[in+0x28+4:], le.Uint32(b[in+0x28:]))
		}},
		{name: "block pointer past the end", seed: 2, want: "(/indirect): block pointer: blocks 16777215+1 outside", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "indirect")+0x28+4*5:], 0xFFFFFF)
		}},
		{name: "indirect block past the end", seed: 2, want: "(/far): indirect block: blocks 16777215+1 outside", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "far")+0x28+4*14:], 0xFFFFFF)
		}},
		{name: "xattr block header", want: "(/text): xattr block", dmg: func(t *testing.T, l locations, b []byte) {
			in := lookup(t, l.rd, "text")
			b[int(in.fileACL)*l.bs] ^= 1
		}},
		{name: "xattr block past the end", want: "(/text): ", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "text")+0x68:], 0xFFFFFF)
		}},
		{name: "xattr value past the block", want: "(/text): xattr block", dmg: func(t *testing.T, l locations, b []byte) {
			in := lookup(t, l.rd, "text")
			blk := int(in.fileACL) * l.bs
			le.PutUint16(b[blk+32+2:], 1020) // the first entry's value offset
		}},
		{name: "in-inode xattr name past the inode", want: "(/small): in-inode xattrs", dmg: func(t *testing.T, l locations, b []byte) {
			off := l.inode(t, "small")
			start := off + 128 + int(le.Uint16(b[off+0x80:])) + 4
			b[start] = 250
		}},
		{name: "ACL", want: "(/text): xattr system.posix_acl_access: ACL entry tag", dmg: func(t *testing.T, l locations, b []byte) {
			// The ACL is in the inode: its value's first entry's tag.
			off := l.inode(t, "text")
			start := off + 128 + int(le.Uint16(b[off+0x80:])) + 4
			for e := start; b[e] != 0 || b[e+1] != 0; e += (16 + int(b[e]) + 3) &^ 3 {
				if b[e+1] == 2 {
					le.PutUint16(b[start+int(le.Uint16(b[e+2:]))+4:], 0x99)
					return
				}
			}
			t.Fatal("no ACL in the inode")
		}},
		{name: "inline data past its xattr", seed: 1, want: "(/small): inline data of 60 bytes, size 1000", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "small")+0x04:], 1000)
		}},
		{name: "symlink too long", want: "(/longlink): symlink of 5000 bytes", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "longlink")+0x04:], 5000)
		}},
		{name: "fast symlink too long", want: "(/link): fast symlink of 60 bytes", dmg: func(t *testing.T, l locations, b []byte) {
			le.PutUint32(b[l.inode(t, "link")+0x04:], 60)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := loadFileSeeds(t)[c.seed]
			b := slices.Clone(s.data)
			if c.dmg != nil {
				c.dmg(t, locations{seedFS(t, s.data), 1024}, b)
			}
			size := s.size
			if c.size != 0 {
				size = c.size
			}
			var r io.ReaderAt = padded{b, size}
			if c.limit != 0 {
				r = failing{r, c.limit}
			}
			rd, err := Open(r, size)
			if c.open {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open: %v, want an error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res := walkReader(t, rd, walkLimits{entries: 1000, bytes: 1 << 30, perFile: 300 << 10})
			if c.want == "" {
				if len(res.errs) > 0 {
					t.Fatal(res.errs)
				}
				return
			}
			if len(res.errs) == 0 {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, err := range res.errs {
				if !strings.Contains(err.Error(), "inode ") {
					t.Errorf("error names no inode: %v", err)
				}
			}
			if !slices.ContainsFunc(res.errs, func(err error) bool { return strings.Contains(err.Error(), c.want) }) {
				t.Fatalf("errors %v, want one with %q", res.errs, c.want)
			}
			// One damaged structure costs one entry or file, not the
			// rest.
			whole, err := Open(bytes.NewReader(s.data), s.size)
			if err != nil {
				t.Fatal(err)
			}
			all := walkReader(t, whole, walkLimits{entries: 1000, bytes: 1 << 30, perFile: 300 << 10}).entries
			if !c.few && res.entries < all-15 {
				t.Errorf("only %d of %d entries read", res.entries, all)
			}
			t.Log(res.errs[0])
		})
	}
}

// TestReaderEveryByte damages every byte of the structures of the seed
// images in turn (superblock fields, the root folder's block and inode, an
// extent tree, a hashed folder's blocks, xattrs, indirect blocks) with a few
// values: whatever the damage, a bounded walk must not panic or hang, and
// what it returns must be well formed.
func TestReaderEveryByte(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	seeds := loadFileSeeds(t)
	for i, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			l := locations{seedFS(t, s.data), 1024}
			var ranges [][2]int
			add := func(off, n int) { ranges = append(ranges, [2]int{off, off + n}) }
			add(l.block(t, "", 0), 1024)
			root, _ := l.rd.f.inodeOffset(2)
			add(int(root), 256)
			add(l.inode(t, "sparse"), 256)
			add(l.inode(t, "text"), 256)
			add(l.block(t, "hashed", 0), 1024)
			add(l.block(t, "hashed", 1), 64)
			if in := lookup(t, l.rd, "text"); in.fileACL != 0 {
				add(int(in.fileACL)*1024, 1024)
			}
			switch i {
			case 0:
				add(l.child(t, "sparse"), 200)
			case 1:
				add(l.inode(t, "small"), 256)
				add(l.inode(t, "dir/sub"), 256)
			case 2:
				add(l.inode(t, "far"), 128)
				in := lookup(t, l.rd, "far")
				add(int(binary.LittleEndian.Uint32(in.block[4*14:]))*1024, 64)
			}
			b := slices.Clone(s.data)
			walks := 0
			for _, rg := range ranges {
				for off := rg[0]; off < rg[1]; off++ {
					orig := b[off]
					for _, v := range []byte{0, 0xFF, orig ^ 1, orig ^ 0x80} {
						b[off] = v
						if rd, err := openReader(padded{b, s.size}, s.size, 1024, 16); err == nil {
							walkReader(t, rd, walkLimits{entries: 500, bytes: 1 << 20, perFile: 4096})
							walks++
						}
					}
					b[off] = orig
				}
			}
			t.Logf("%d walks", walks)
		})
	}
}

// TestReaderConcurrent walks a seed image from several goroutines at once,
// sharing one reader and the entries it returns (run with -race).
func TestReaderConcurrent(t *testing.T) {
	s := loadFileSeeds(t)[0]
	rd, err := Open(bytes.NewReader(s.data), s.size)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := rd.Root()
	list, err := rd.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for _, e := range list[g%len(list):] {
				if e.Type == cfs.TypeDir {
					if _, err := rd.ReadDir(e); err != nil {
						errs <- err
					}
					continue
				}
				if e.Type != cfs.TypeFile {
					continue
				}
				r, err := rd.Open(e)
				if err != nil {
					errs <- err
					continue
				}
				buf := make([]byte, 777)
				for off := int64(g); off < e.Size; off += 5000 {
					if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
						errs <- fmt.Errorf("%s: %w", e.Name, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReaderForeignEntry opens entries that another layer rebuilt from their
// inode number (no Sys handle), and refuses ones it cannot know.
func TestReaderForeignEntry(t *testing.T) {
	s := loadFileSeeds(t)[0]
	rd, err := Open(bytes.NewReader(s.data), s.size)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rd.Open(&cfs.Entry{Name: "small", Inode: 13})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 20)
	if n, err := r.ReadAt(b, 0); err != io.EOF || string(b[:n]) != "small file\n" {
		t.Fatalf("%q, %v", b[:n], err)
	}
	for _, e := range []*cfs.Entry{nil, {Name: "x"}, {Name: "x", Inode: 1 << 40}, {Name: "x", Inode: 99999}} {
		if _, err := rd.Open(e); err == nil {
			t.Errorf("Open(%+v): no error", e)
		}
		if _, err := rd.ReadDir(e); err == nil {
			t.Errorf("ReadDir(%+v): no error", e)
		}
	}
	if _, err := rd.ReadDir(&cfs.Entry{Name: "small", Inode: 13}); err == nil || !errors.Is(err, err) {
		t.Error("ReadDir of a file: no error")
	}
}
