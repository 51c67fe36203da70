package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	cfs "cairn/internal/fs"
)

// shortEntry builds a short directory entry.
func shortEntry(name string, attr, nt byte, cluster uint32, size uint32) []byte {
	e := make([]byte, 32)
	copy(e, []byte(name+strings.Repeat(" ", 11-len(name))))
	e[11], e[12] = attr, nt
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

// longEntries builds the long-name entries of name for the short entry
// short, in the order they are stored (last piece first).
func longEntries(name string, short []byte) []byte {
	u := utf16.Encode([]rune(name))
	if len(u)%13 != 0 {
		u = append(u, 0)
	}
	for len(u)%13 != 0 {
		u = append(u, 0xFFFF)
	}
	pieces := len(u) / 13
	sum := shortSum(short[:11])
	var out []byte
	for ord := pieces; ord >= 1; ord-- {
		e := make([]byte, 32)
		e[0] = byte(ord)
		if ord == pieces {
			e[0] |= 0x40
		}
		e[11], e[13] = attrLongName, sum
		p := u[(ord-1)*13:]
		for k := range 5 {
			binary.LittleEndian.PutUint16(e[1+2*k:], p[k])
		}
		for k := range 6 {
			binary.LittleEndian.PutUint16(e[14+2*k:], p[5+k])
		}
		for k := range 2 {
			binary.LittleEndian.PutUint16(e[28+2*k:], p[11+k])
		}
		out = append(out, e...)
	}
	return out
}

func dirNames(ents []dirent) []string {
	var names []string
	for _, e := range ents {
		names = append(names, e.name)
	}
	return names
}

func TestParseDir(t *testing.T) {
	smile := shortEntry("SMILE~1 TXT", 0x20, 0, 3, 10)
	broken := shortEntry("BROKEN~1TXT", 0x20, 0, 4, 0)
	brokenLong := longEntries("a broken long name.txt", broken)
	brokenLong[32+13]++ // the second piece's checksum
	order := shortEntry("ORDER~1 TXT", 0x20, 0, 5, 0)
	orderLong := longEntries("pieces out of order, a long name", order)
	orderLong[0] = 0x40 | 4 // says 4 pieces, has 3
	wrongSum := shortEntry("WRONG~1 TXT", 0x20, 0, 6, 0)
	wrongSumLong := longEntries("wrong checksum.txt", shortEntry("OTHER   TXT", 0x20, 0, 0, 0))
	slash := shortEntry("SLASH~1 TXT", 0x20, 0, 7, 0)
	deletedLong := longEntries("deleted.txt", shortEntry("DELETED TXT", 0x20, 0, 0, 0))
	deletedLong[0] = 0xE5
	ctime := shortEntry("CTIME", 0x20, 0x08, 8, 1)
	binary.LittleEndian.PutUint16(ctime[16:], 23<<9|2<<5|29)  // 2003-02-29: no such day
	binary.LittleEndian.PutUint16(ctime[24:], 23<<9|3<<5|1)   // 2003-03-01
	binary.LittleEndian.PutUint16(ctime[22:], 13<<11|14<<5|7) // 13:14:14
	binary.LittleEndian.PutUint16(ctime[18:], 23<<9|3<<5|2)   // 2003-03-02
	ctime2 := shortEntry("CTIME2", 0x20, 0, 9, 1)
	binary.LittleEndian.PutUint16(ctime2[16:], 23<<9|3<<5|1)
	binary.LittleEndian.PutUint16(ctime2[14:], 13<<11|14<<5|7)
	ctime2[13] = 199

	dir := bytes.Join([][]byte{
		shortEntry(".", 0x10, 0, 12, 0),
		shortEntry("..", 0x10, 0, 0, 0),
		shortEntry("LABEL", attrVolume, 0, 0, 0),
		longEntries("😀 smile, a name in many pieces.txt", smile), smile,
		brokenLong, broken,
		orderLong[32:], order, // the last piece missing
		wrongSumLong, wrongSum,
		longEntries("a/b", slash), slash,
		deletedLong, shortEntry("\xe5ELETED TXT", 0x20, 0, 0, 0),
		shortEntry("README  TXT", 0x20, 0x18, 10, 0),
		shortEntry("MIXED   TXT", 0x20, 0x10, 0, 0),
		shortEntry("\x05TRANGE", 0x20, 0, 0, 0),
		shortEntry("BAD\x01", 0x20, 0, 0, 0),
		shortEntry("HIGH\x9a", 0x10, 0, 11, 0),
		ctime, ctime2,
		make([]byte, 32), // the end
		shortEntry("AFTEREND", 0x20, 0, 0, 0),
	}, nil)
	ents, dotdot := parseDir(dir, true)
	if dotdot != 0 {
		t.Errorf("dotdot %d", dotdot)
	}
	want := []string{"😀 smile, a name in many pieces.txt", "BROKEN~1.TXT", "ORDER~1.TXT", "WRONG~1.TXT", "SLASH~1.TXT",
		"readme.txt", "MIXED.txt", "σTRANGE", "HIGHÜ", "ctime", "CTIME2"}
	if got := dirNames(ents); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("names\n%q, want\n%q", got, want)
	}
	byName := map[string]dirent{}
	for _, e := range ents {
		byName[e.name] = e
	}
	if e := byName["😀 smile, a name in many pieces.txt"]; e.cluster != 3 || e.size != 10 || e.index != 6 {
		t.Errorf("%+v", e)
	}
	if e := byName["ctime"]; e.ctime != 0 || time.Unix(0, e.mtime).UTC() != time.Date(2003, 3, 1, 13, 14, 14, 0, time.UTC) ||
		time.Unix(0, e.atime).UTC() != time.Date(2003, 3, 2, 0, 0, 0, 0, time.UTC) {
		t.Errorf("ctime %v mtime %v atime %v", time.Unix(0, e.ctime), time.Unix(0, e.mtime), time.Unix(0, e.atime))
	}
	if e := byName["CTIME2"]; time.Unix(0, e.ctime).UTC() != time.Date(2003, 3, 1, 13, 14, 15, 990_000_000, time.UTC) || e.mtime != 0 {
		t.Errorf("ctime %v mtime %v", time.Unix(0, e.ctime), e.mtime)
	}
	// On FAT12/16 the high word of the cluster is not the cluster's.
	hi := shortEntry("HI", 0x20, 0, 0x10005, 1)
	if ents, dotdot := parseDir(hi, false); len(ents) != 1 || ents[0].cluster != 5 || dotdot != -1 {
		t.Errorf("%+v %d", ents, dotdot)
	}
}

func TestCP437(t *testing.T) {
	if cp437[0] != 'Ç' || cp437[0x7F] != '\u00a0' || cp437[0xE1-0x80] != 'ß' {
		t.Errorf("cp437 table off: %q %q %q", cp437[0], cp437[0x7F], cp437[0xE1-0x80])
	}
}

// openBytes opens the reader of an image in memory.
func openBytes(t *testing.T, img []byte) *reader {
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

// TestReaderTestdata reads the files of the testdata images.
func TestReaderTestdata(t *testing.T) {
	for _, name := range []string{"fat12", "fat16", "fat32"} {
		rd := openBytes(t, testImage(t, name))
		tree := readerTree(t, rd)
		want := map[string]string{
			".":                "dir",
			"dir":              "dir",
			"dir/sub":          "dir",
			"hello.txt":        "file " + sum([]byte("hello from "+name+"\n")),
			"dir/sub/five.bin": "file " + sum(bytes.Repeat([]byte("x"), 5000)),
		}
		if !maps.Equal(want, tree) {
			t.Errorf("%s: %v, want %v", name, tree, want)
		}
		if e := lookup(t, rd, "dir/sub/five.bin"); e.Size != 5000 || e.Mode != 0o644 || e.Type != cfs.TypeFile || e.MTime == 0 {
			t.Errorf("%s: %+v", name, e)
		}
	}
	rd := openBytes(t, testImage(t, "fat32small"))
	if tree := readerTree(t, rd); len(tree) != 1 {
		t.Errorf("fat32small: %v", tree)
	}

	rd = openBytes(t, testImage(t, "reader"))
	file := func(s string) string { return "file " + sum([]byte(s)) }
	want := map[string]string{
		".":                                "dir",
		"a long file name with spaces.txt": file("a long name\n"),
		"readme.txt":                       file("lower\n"),
		"a":                                "dir",
		"a/b":                              "dir",
		"a/b/c":                            "dir",
		"a/b/c/deep.txt":                   file("deep\n"),
		"Ünïcödé folder":                   "dir",
		"Ünïcödé folder/日本語.txt":           file("unicode\n"),
		"empty":                            file(""),
		"ro.txt":                           file("read only\n"),
		"p1":                               file(strings.Repeat("1", 1500)),
		"p3":                               file(strings.Repeat("3", 1500)),
		"p5":                               file(strings.Repeat("5", 1500)),
		"fragmented":                       file(strings.Repeat("f", 3000)),
	}
	if got := readerTree(t, rd); !maps.Equal(got, want) {
		t.Errorf("reader.img: %v", got)
	}
	if e := lookup(t, rd, "ro.txt"); e.Mode != 0o444 {
		t.Errorf("ro.txt: mode %o", e.Mode)
	}
	f, err := rd.Open(lookup(t, rd, "fragmented"))
	if err != nil {
		t.Fatal(err)
	}
	if spans := f.(*fileReader).spans; len(spans) != 2 {
		t.Errorf("fragmented: spans %v", spans)
	}
}

// setFAT sets the FAT16 entry of cluster cl in every FAT copy of img.
func setFAT(rd *reader, img []byte, cl uint32, val uint16) {
	v := rd.v
	for c := range v.numFATs {
		binary.LittleEndian.PutUint16(img[(v.reservedSecs+c*v.fatSecs)*v.sectorSize+int64(cl)*2:], val)
	}
}

// TestReaderDamaged damages the FAT16 test image and checks that reading it
// gives an error that names the path, and no panic or endless loop.
func TestReaderDamaged(t *testing.T) {
	clean := testImage(t, "fat16")
	rd := openBytes(t, clean)
	five := lookup(t, rd, "dir/sub/five.bin")
	sub := lookup(t, rd, "dir/sub")
	dir := lookup(t, rd, "dir")
	fiveCl, subCl, dirCl := five.Sys.(*node).cluster, sub.Sys.(*node).cluster, dir.Sys.(*node).cluster
	// five.bin has 10 clusters of 512 bytes, sub and dir one each.
	for _, tc := range []struct {
		what, path string
		damage     func(img []byte, rd *reader)
		read       string // the path to read: a folder is listed, a file read
	}{
		{"a loop in a file's chain", "dir/sub/five.bin", func(img []byte, rd *reader) {
			setFAT(rd, img, fiveCl+5, uint16(fiveCl+2))
		}, "dir/sub/five.bin"},
		{"a file's chain out of the volume", "dir/sub/five.bin", func(img []byte, rd *reader) {
			setFAT(rd, img, fiveCl+3, 0xFFF0)
		}, "dir/sub/five.bin"},
		{"a file's chain to a free cluster", "dir/sub/five.bin", func(img []byte, rd *reader) {
			setFAT(rd, img, fiveCl+3, 0)
		}, "dir/sub/five.bin"},
		{"a file's chain to a bad cluster", "dir/sub/five.bin", func(img []byte, rd *reader) {
			setFAT(rd, img, fiveCl+3, 0xFFF7)
		}, "dir/sub/five.bin"},
		{"a file's chain too short", "dir/sub/five.bin", func(img []byte, rd *reader) {
			setFAT(rd, img, fiveCl+3, 0xFFFF)
		}, "dir/sub/five.bin"},
		{"a file starting at cluster 1", "dir/sub/five.bin", func(img []byte, rd *reader) {
			binary.LittleEndian.PutUint16(img[five.Inode*32+26:], 1)
		}, "dir/sub/five.bin"},
		{"a file bigger than the volume", "dir/sub/five.bin", func(img []byte, rd *reader) {
			binary.LittleEndian.PutUint32(img[five.Inode*32+28:], 0xFFFFFFFF)
		}, "dir/sub/five.bin"},
		{"a folder's chain looping", "dir/sub", func(img []byte, rd *reader) {
			setFAT(rd, img, subCl, uint16(subCl))
		}, "dir/sub"},
		{"a folder in itself", "dir/sub", func(img []byte, rd *reader) {
			// dir/sub's first cluster is dir's: its ".." does not
			// name dir.
			binary.LittleEndian.PutUint16(img[sub.Inode*32+26:], uint16(dirCl))
		}, "dir/sub"},
		{"a folder that is the root", "dir", func(img []byte, rd *reader) {
			binary.LittleEndian.PutUint16(img[dir.Inode*32+26:], 0)
		}, ""},
		{"a folder's .. entry", "dir/sub", func(img []byte, rd *reader) {
			binary.LittleEndian.PutUint16(img[rd.v.clusterOffset(subCl)+32+26:], uint16(subCl))
		}, "dir/sub"},
		{"a folder without ..", "dir/sub", func(img []byte, rd *reader) {
			img[rd.v.clusterOffset(subCl)+32] = 0xE5
		}, "dir/sub"},
	} {
		img := bytes.Clone(clean)
		tc.damage(img, rd)
		drd := openBytes(t, img)
		var err error
		if tc.read == "" {
			root, _ := drd.Root()
			_, err = drd.ReadDir(root)
		} else {
			e := lookup(t, drd, tc.read)
			if e.Type == cfs.TypeDir {
				_, err = drd.ReadDir(e)
			} else {
				_, err = readAll(drd, e)
			}
		}
		if err == nil || !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want an error about %s", tc.what, err, tc.path)
		}
		// Walking everything ends, with the error.
		if err := walk(drd, func(string, *cfs.Entry) error { return nil }); err == nil {
			if tc.read != "dir/sub/five.bin" {
				t.Errorf("%s: the walk found nothing wrong", tc.what)
			}
		}
	}
}

// TestReaderForeignEntry checks that entries of another reader are refused.
func TestReaderForeignEntry(t *testing.T) {
	rd := openBytes(t, testImage(t, "fat12"))
	if _, err := rd.ReadDir(&cfs.Entry{Name: "x", Type: cfs.TypeDir, Sys: 5}); err == nil {
		t.Error("ReadDir of a foreign entry: no error")
	}
	if _, err := rd.Open(&cfs.Entry{Name: "x", Type: cfs.TypeFile}); err == nil {
		t.Error("Open of a foreign entry: no error")
	}
	if _, err := rd.Open(lookup(t, rd, "dir")); err == nil {
		t.Error("Open of a folder: no error")
	}
	if _, err := rd.ReadDir(lookup(t, rd, "hello.txt")); err == nil {
		t.Error("ReadDir of a file: no error")
	}
}

// TestReaderConcurrent walks a testdata image from several goroutines at
// once, on one reader (run with -race).
func TestReaderConcurrent(t *testing.T) {
	rd := openBytes(t, testImage(t, "reader"))
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
					m[p] = "file " + sum(b)
				}
				return nil
			})
			done <- m
		}()
	}
	for range 4 {
		m := <-done
		if len(m) < 8 {
			t.Errorf("%d files", len(m))
		}
		for p, s := range m {
			if want[p] != s {
				t.Errorf("%s: %s, want %s", p, s, want[p])
			}
		}
	}
}
