package ntfs

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cfs "cairn/internal/fs"
)

// readerImage returns testdata/reader.img (see testdata/make-reader.sh).
func readerImage(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "reader.img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openBytes(t testing.TB, img []byte) *reader {
	t.Helper()
	rd, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return rd.(*reader)
}

// lookup returns the entry at path p ("a/b") of rd.
func lookup(t testing.TB, rd cfs.Reader, p string) *cfs.Entry {
	t.Helper()
	e, err := rd.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(p, "/") {
		list, err := rd.ReadDir(e)
		if err != nil {
			t.Fatal(err)
		}
		e = nil
		for _, c := range list {
			if c.Name == name {
				e = c
			}
		}
		if e == nil {
			t.Fatalf("%s: no %s", p, name)
		}
	}
	return e
}

// TestReaderTestdata reads every file of the testdata images.
func TestReaderTestdata(t *testing.T) {
	rd := openBytes(t, readerImage(t))
	want := map[string]string{
		".":                                 "dir",
		"Long Name.txt":                     "file " + sha([]byte("dos\n")),
		"a":                                 "dir",
		"a/b":                               "dir",
		"a/b/c":                             "dir",
		"a/b/c/deep.txt":                    "file " + sha([]byte("deep\n")),
		"a/hardlink.txt":                    "file " + sha([]byte("small\n")),
		"a/hardlink.txt stream user.stream": sha([]byte("stream data")),
		"compressed":                        "dir",
		"compressed/text.txt":               "file " + sha(bytes.Repeat([]byte("c"), 40000)),
		"empty":                             "file " + sha(nil),
		"many":                              "dir",
		"nonresident.bin":                   "file " + sha(bytes.Repeat([]byte("n"), 3000)),
		"resident.txt":                      "file " + sha([]byte("small\n")),
		"resident.txt stream user.stream":   sha([]byte("stream data")),
		"sparse.bin":                        "file " + sha(append([]byte("start"), make([]byte, 200000-5)...)),
		"symlink":                           "symlink a/b/c/deep.txt",
		"Ünïcödé ☃.txt":                     "file " + sha([]byte("unicode\n")),
	}
	for i := 1; i <= 12; i++ {
		n := string(rune('0'+i/10)) + string(rune('0'+i%10))
		want["many/a rather long file name, number "+n+".txt"] = "file " + sha([]byte(n+"\n"))
	}
	if got := readerTree(t, rd); !maps.Equal(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %q, want %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: unexpected %q", k, v)
			}
		}
	}
	res, link := lookup(t, rd, "resident.txt"), lookup(t, rd, "a/hardlink.txt")
	if res.Links != 2 || link.Links != 2 || res.Inode != link.Inode || res.Sys != link.Sys || res.Sys.(uint64) != res.Inode {
		t.Errorf("hard links: %+v, %+v", res, link)
	}
	if e := lookup(t, rd, "Long Name.txt"); e.Links != 1 || e.Mode != 0o644 || e.MTime == 0 || e.ATime == 0 || e.CTime == 0 {
		t.Errorf("%+v", e)
	}
	// The folder of 12 files and the root have index records.
	for _, p := range []string{"many", "."} {
		var n int64 = recRoot
		if p != "." {
			n = int64(lookup(t, rd, p).Inode)
		}
		f, err := rd.v.readFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if f.first(attrIndexAlloc, "$I30") == nil {
			t.Errorf("%s has no $INDEX_ALLOCATION", p)
		}
	}

	rd = openBytes(t, testImage(t))
	want = map[string]string{
		".":                        "dir",
		"dir":                      "dir",
		"dir/hello.txt":            "file " + sha([]byte("hello\n")),
		"x.txt":                    "file " + sha(bytes.Repeat([]byte("x"), 5000)),
		"x.txt stream user.stream": sha([]byte("a named stream")),
	}
	if got := readerTree(t, rd); !maps.Equal(got, want) {
		t.Errorf("ntfs.img: %v", got)
	}
}

func TestNTTime(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want int64
	}{
		{0, 0},
		{116444736000000000, 0},
		{116444736000000001, 100},
		{116444736000000000 - 1, -100},
		{1<<63 - 1, 0}, // year 30828
		{1 << 63, 0},
		{1, 0}, // 1601
		{116444736000000000 + 1_000_000_000*10_000_000, 1_000_000_000 * 1_000_000_000},
	} {
		if got := ntTime(tc.in); got != tc.want {
			t.Errorf("ntTime(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// recordOffset returns the byte offset on the volume of MFT record n.
func recordOffset(t testing.TB, v *volume, n int64) int64 {
	pos := n * v.recordSize
	for _, r := range v.mft.runs {
		if pos < (r.VCN+r.Len)*v.clusterSize && r.LCN != sparse {
			return r.LCN*v.clusterSize + pos - r.VCN*v.clusterSize
		}
	}
	t.Fatalf("record %d not found", n)
	return 0
}

// attrOffset returns the offset in img of the attribute of type typ of the
// MFT record at off.
func attrOffset(t testing.TB, img []byte, off int64, typ uint32) int64 {
	t.Helper()
	pos := off + int64(binary.LittleEndian.Uint16(img[off+20:]))
	for binary.LittleEndian.Uint32(img[pos:]) != attrEnd {
		if binary.LittleEndian.Uint32(img[pos:]) == typ {
			return pos
		}
		pos += int64(binary.LittleEndian.Uint32(img[pos+4:]))
	}
	t.Fatalf("no attribute %#x", typ)
	return 0
}

// keyEntry returns the offset of the index entry of name in img[from:to]:
// its key holds the name's length, a namespace and the name.
func keyEntry(t testing.TB, img []byte, from, to int64, name string) int64 {
	t.Helper()
	for ns := byte(0); ns < 4; ns++ {
		pat := append([]byte{byte(len(utf16le(name)) / 2), ns}, utf16le(name)...)
		if i := bytes.Index(img[from:to], pat); i >= 0 {
			return from + int64(i) - 64 - 16
		}
	}
	t.Fatalf("no index entry %q", name)
	return 0
}

// TestReaderDamaged damages the testdata image and checks that reading it
// gives an error naming the record, never a panic or a hang.
func TestReaderDamaged(t *testing.T) {
	clean := readerImage(t)
	rd := openBytes(t, clean)
	v := rd.v
	rec := func(p string) int64 { return int64(lookup(t, rd, p).Inode) }
	recOff := func(p string) int64 { return recordOffset(t, v, rec(p)) }
	allocOff := func(p string) int64 { // of the folder's first index record
		f, err := v.readFile(rec(p))
		if err != nil {
			t.Fatal(err)
		}
		return f.first(attrIndexAlloc, "$I30").Runs[0].LCN * v.clusterSize
	}
	seq := func(p string) uint64 {
		f, err := v.readFile(rec(p))
		if err != nil {
			t.Fatal(err)
		}
		return uint64(f.base.Seq) << 48
	}
	free := int64(recFirstUser) // a record not in use
	for ; free < v.mft.dataSize/v.recordSize; free++ {
		if _, err := v.readRecord(free); err != nil {
			break
		}
	}
	if free == v.mft.dataSize/v.recordSize {
		t.Fatal("no free MFT record")
	}
	setRef := func(img []byte, entry int64, ref uint64) {
		binary.LittleEndian.PutUint64(img[entry:], ref)
	}
	for _, tc := range []struct {
		what, list, open string // the folder to list, or the file to read
		want             string // in the error
		damage           func(img []byte)
	}{
		{"a torn MFT record", "many", "", "torn", func(img []byte) {
			img[recOff("many/a rather long file name, number 05.txt")+511]++
		}},
		{"a torn index record", "many", "", "index record at VCN 0", func(img []byte) {
			img[allocOff("many")+1023]++
		}},
		{"an index record that is not one", "many", "", "INDX", func(img []byte) {
			img[allocOff("many")]++
		}},
		{"an index record at another VCN", "many", "", "says it is at VCN", func(img []byte) {
			img[allocOff("many")+16]++
		}},
		{"a stale index entry", "a/b", "", "stale", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), uint64(rec("a/b/c"))|seq("a/b/c")+1<<48)
		}},
		{"a folder inside itself", "a/b", "", "no name in the folder", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), uint64(rec("a"))|seq("a"))
		}},
		{"a folder listed twice", "a", "", "are both folder record", func(img []byte) {
			off := recOff("a")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "hardlink.txt"), uint64(rec("a/b"))|seq("a/b"))
		}},
		{"the root inside a folder", "a/b", "", "record 5", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), recRoot|5<<48)
		}},
		{"an entry naming a file of another folder", "a/b", "", "no name in the folder", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), uint64(rec("many/a rather long file name, number 01.txt")))
		}},
		{"an entry naming a free record", "a/b", "", "FILE signature", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), uint64(free))
		}},
		{"an entry past the MFT", "a/b", "", "past the $MFT", func(img []byte) {
			off := recOff("a/b")
			setRef(img, keyEntry(t, img, off, off+v.recordSize, "c"), 1<<40)
		}},
		{"a runlist past the volume", "", "nonresident.bin", "beyond the volume", func(img []byte) {
			a := attrOffset(t, img, recOff("nonresident.bin"), attrData)
			runs := a + int64(binary.LittleEndian.Uint16(img[a+32:]))
			copy(img[runs:], []byte{0x31, 0x03, 0xFF, 0xFF, 0x7F, 0}) // 3 clusters at 8M
		}},
		{"damaged compressed data", "", "compressed/text.txt", "LZNT1", func(img []byte) {
			f, err := v.readFile(rec("compressed/text.txt"))
			if err != nil {
				t.Fatal(err)
			}
			r := f.first(attrData, "").Runs[0]
			for i := range r.Len * v.clusterSize {
				img[r.LCN*v.clusterSize+i] = 0xFF
			}
		}},
		{"an index entry longer than its node", "a/b", "", "entry at", func(img []byte) {
			off := recOff("a/b")
			e := keyEntry(t, img, off, off+v.recordSize, "c")
			binary.LittleEndian.PutUint16(img[e+8:], 0x1000)
		}},
		{"an index key longer than its entry", "a/b", "", "key of", func(img []byte) {
			off := recOff("a/b")
			e := keyEntry(t, img, off, off+v.recordSize, "c")
			binary.LittleEndian.PutUint16(img[e+10:], 0x100)
		}},
	} {
		img := bytes.Clone(clean)
		tc.damage(img)
		drd := openBytes(t, img)
		var err error
		if tc.list != "" {
			_, err = drd.ReadDir(lookup(t, drd, tc.list))
		} else {
			_, err = readAll(drd, lookup(t, drd, tc.open))
		}
		t.Logf("%s: %v", tc.what, err)
		if err == nil || !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "record") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.what, err, tc.want)
		}
		// Walking everything ends, with an error.
		err = walk(drd, func(p string, e *cfs.Entry) error {
			if e.Type == cfs.TypeFile {
				_, err := readAll(drd, e)
				return err
			}
			return nil
		})
		if err == nil || errors.Is(err, errBroken) {
			t.Errorf("%s: walk: %v", tc.what, err)
		}
	}
}

// TestAttrListDamaged checks an attribute list naming a record that is not
// the file's extension.
func TestAttrListDamaged(t *testing.T) {
	seed, size := attrListSeed(t)
	v, err := open(zeroPadded{seed, size}, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.readFile(recBitmap); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(seed)
	binary.LittleEndian.PutUint64(bad[seedMFT+16*seedRecord+32:], recVolume|1<<48)
	v, err = open(zeroPadded{bad, size}, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.readFile(recBitmap); err == nil || !strings.Contains(err.Error(), "not an extension of record 6") {
		t.Errorf("%v", err)
	}
	if _, err := v.readFile(16); err == nil || !strings.Contains(err.Error(), "extension") {
		t.Errorf("an extension record read as a file: %v", err)
	}
}

// TestReaderForeignEntry checks that entries of another reader are refused.
func TestReaderForeignEntry(t *testing.T) {
	rd := openBytes(t, readerImage(t))
	for _, sys := range []any{nil, "x", uint64(1 << 50), int64(5)} {
		if _, err := rd.ReadDir(&cfs.Entry{Name: "x", Type: cfs.TypeDir, Sys: sys}); err == nil {
			t.Errorf("ReadDir of an entry with Sys %v: no error", sys)
		}
	}
	if _, err := rd.Open(lookup(t, rd, "a")); err == nil {
		t.Error("Open of a folder: no error")
	}
	if _, err := rd.ReadDir(lookup(t, rd, "resident.txt")); err == nil {
		t.Error("ReadDir of a file: no error")
	}
}

// TestCompressedReader reads a compressed attribute made here: a unit
// compressed in 2 clusters, a unit stored as it is, a sparse unit, and an
// initialized size inside the second unit.
func TestCompressedReader(t *testing.T) {
	const cs = 512
	unit0 := bytes.Repeat([]byte("compressible "), 16*cs/13+1)[:16*cs]
	comp := compressLZNT1(unit0)
	if len(comp) > 2*cs {
		t.Fatalf("unit 0 compresses to %d bytes", len(comp))
	}
	unit1 := make([]byte, 16*cs)
	rand.NewChaCha8([32]byte{7}).Read(unit1)
	disk := make([]byte, 64*cs)
	copy(disk[3*cs:], comp)   // clusters 3-4
	copy(disk[20*cs:], unit1) // clusters 20-35
	vol := &volume{r: bytes.NewReader(disk), sectorSize: 512, clusterSize: cs, clusters: 64}
	runs := []run{{0, 3, 2}, {2, sparse, 14}, {16, 20, 16}, {32, sparse, 16}}
	dataSize, initSize := int64(48*cs-100), int64(20*cs+3)
	rr, err := vol.newRunReader(runs, dataSize, initSize)
	if err != nil {
		t.Fatal(err)
	}
	c, err := vol.newCompressedReader(rr, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, dataSize)
	copy(want, unit0)
	copy(want[16*cs:initSize], unit1)
	// Read in pieces of odd sizes, across units.
	got := make([]byte, dataSize)
	for off := 0; off < len(got); off += 777 {
		n, err := c.ReadAt(got[off:min(off+777, len(got))], int64(off))
		if (err != nil && err != io.EOF) || n != min(777, len(got)-off) {
			t.Fatalf("at %d: %d, %v", off, n, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Error("content differs")
	}
	if n, err := c.ReadAt(make([]byte, 10), dataSize-5); n != 5 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	for _, cu := range []uint8{0, 17, 13} { // 2^13 clusters of 512 bytes: 4 MiB, the most
		if _, err := vol.newCompressedReader(rr, cu); (err == nil) != (cu == 13) {
			t.Errorf("compression unit 2^%d: %v", cu, err)
		}
	}
}

// TestReaderConcurrent walks the testdata image from several goroutines at
// once, on one reader (run with -race).
func TestReaderConcurrent(t *testing.T) {
	rd := openBytes(t, readerImage(t))
	want := readerTree(t, rd)
	done := make(chan map[string]string)
	for range 4 {
		go func() {
			m := map[string]string{}
			walk(rd, func(p string, e *cfs.Entry) error {
				if e.Type == cfs.TypeFile {
					b, err := readAll(rd, e)
					if err != nil {
						return err
					}
					m[p] = sha(b)
				}
				return nil
			})
			done <- m
		}()
	}
	for range 4 {
		m := <-done
		for p, s := range m {
			if want[p] != "file "+s {
				t.Errorf("%s: %s, want %s", p, s, want[p])
			}
		}
	}
}
