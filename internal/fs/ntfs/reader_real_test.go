//go:build linux

package ntfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	cfs "cairn/internal/fs"
)

// reparseSymlink returns the reparse data of a symbolic link (Windows'
// format) to target, relative or not.
func reparseSymlink(target string, relative bool) []byte {
	name := utf16le(target)
	data := binary.LittleEndian.AppendUint16(nil, 0) // substitute name
	data = binary.LittleEndian.AppendUint16(data, uint16(len(name)))
	data = binary.LittleEndian.AppendUint16(data, uint16(len(name))) // print name
	data = binary.LittleEndian.AppendUint16(data, uint16(len(name)))
	flags := uint32(0)
	if relative {
		flags = 1
	}
	data = binary.LittleEndian.AppendUint32(data, flags)
	data = append(append(data, name...), name...)
	return reparsePoint(tagSymlink, data)
}

// reparseJunction returns the reparse data of a junction to target, a
// Windows path with a drive letter.
func reparseJunction(target string) []byte {
	sub := append(utf16le(`\??\`+target), 0, 0)
	print := append(utf16le(target), 0, 0)
	data := binary.LittleEndian.AppendUint16(nil, 0)
	data = binary.LittleEndian.AppendUint16(data, uint16(len(sub)-2))
	data = binary.LittleEndian.AppendUint16(data, uint16(len(sub)))
	data = binary.LittleEndian.AppendUint16(data, uint16(len(print)-2))
	data = append(append(data, sub...), print...)
	return reparsePoint(tagMountPoint, data)
}

func reparsePoint(tag uint32, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, data...)
}

// streamXattrs returns the user.* extended attributes of p, as xattrs does,
// but with a nil value for those too big for Linux to read (above 64 KiB).
func streamXattrs(t *testing.T, p string) map[string][]byte {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	m := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		n, err := syscall.Getxattr(p, name, v)
		switch {
		case err == syscall.E2BIG:
			m[name] = nil
		case err != nil:
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		default:
			m[name] = v[:n]
		}
	}
	return m
}

// TestReaderRealNTFS makes an NTFS volume with mkntfs, fills it through
// ntfs-3g (nested folders, a folder of 5000 files, Unicode names, empty,
// resident, non-resident, sparse and compressed files, hard links, named
// streams small and big, Interix and Windows symbolic links, a junction, a
// DOS name, a read-only file, set times), and compares every entry the
// reader lists (type, size, content, times, inode, links, link target,
// streams) with what a read-only ntfs-3g mount shows.
func TestReaderRealNTFS(t *testing.T) {
	requireRoot(t, "mkntfs", "ntfs-3g", "setfattr", "mountpoint")
	img := randomImage(t, 96<<20)
	runCmd(t, "mkntfs", "-F", "-Q", "-L", "reader", img)
	mnt := mount(t, img, "compression,streams_interface=windows")
	random := func(size int64) []byte {
		b := make([]byte, size)
		rng(t).Read(b)
		return b
	}
	write := func(rel string, data []byte) {
		p := filepath.Join(mnt, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setxattr := func(rel, name string, value []byte) {
		if err := syscall.Setxattr(filepath.Join(mnt, rel), name, value, 0); err != nil {
			t.Fatalf("setxattr %s %s: %v", rel, name, err)
		}
	}

	write("a/b/c/d/deep.txt", []byte("deep\n"))
	for i := range 5000 {
		write(fmt.Sprintf("many/file number %04d.txt", i), []byte(fmt.Sprintf("file %d\n", i)))
	}
	for _, name := range []string{"Ünïcödé.txt", "日本語のファイル名.txt", "😀 emoji ☃.txt", "Ελληνικά/κείμενο.txt"} {
		write(name, []byte(name))
	}
	write("empty.bin", nil)
	write("resident.txt", []byte("a small file, resident in its MFT record\n"))
	write("big.bin", random(3<<20+123))

	// Sparse: data, a hole of 5 MiB, data, a hole to the end.
	sp, err := os.Create(filepath.Join(mnt, "sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sp.Write(random(10000))
	sp.WriteAt([]byte("after the hole"), 5<<20)
	if err := sp.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	// Compressed: files made in a folder with the compressed attribute.
	if err := os.Mkdir(filepath.Join(mnt, "compressed"), 0o755); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "setfattr", "-h", "-v", "0x00000800", "-n", "system.ntfs_attrib_be", filepath.Join(mnt, "compressed"))
	text := []byte(strings.Repeat("cairn reads compressed files; ", 20000))
	write("compressed/text.txt", text)
	write("compressed/random.bin", random(200<<10+7))
	mixed := append(append(bytes.Clone(text[:100000]), make([]byte, 300000)...), random(150000)...)
	write("compressed/mixed.bin", mixed) // compressed, zero (sparse) and stored units
	write("compressed/tiny.txt", []byte("tiny"))
	write("compressed/extended.txt", text[:100000])
	if err := os.Truncate(filepath.Join(mnt, "compressed/extended.txt"), 300000); err != nil {
		t.Fatal(err)
	}

	// Hard links, in one folder and across folders.
	write("links/original.txt", []byte("linked\n"))
	for _, l := range []string{"links/second.txt", "a/third.txt"} {
		if err := os.Link(filepath.Join(mnt, "links/original.txt"), filepath.Join(mnt, l)); err != nil {
			t.Fatal(err)
		}
	}

	// Named streams: small, empty, and one too big for an xattr.
	write("streams.txt", []byte("has streams\n"))
	write("streams.txt:small", []byte("data"))
	write("streams.txt:empty", nil)
	bigStream := random(100000)
	write("streams.txt:big", bigStream)
	write("folder with stream/x", nil)
	write("folder with stream:dirstream", []byte("a folder's stream"))

	// Symbolic links: ntfs-3g's own (Interix), a Windows relative one, a
	// junction.
	if err := os.Symlink("../links/original.txt", filepath.Join(mnt, "a/interix link")); err != nil {
		t.Fatal(err)
	}
	write("winlink", nil)
	setxattr("winlink", "system.ntfs_reparse_data", reparseSymlink(`links\original.txt`, true))
	if err := os.Mkdir(filepath.Join(mnt, "junction"), 0o755); err != nil {
		t.Fatal(err)
	}
	setxattr("junction", "system.ntfs_reparse_data", reparseJunction(`C:\Users\Public`))

	// A long name with a DOS name; a read-only file; set times.
	write("A Long File Name.txt", []byte("dos\n"))
	setxattr("A Long File Name.txt", "system.ntfs_dos_name", []byte("ALONGF~1.TXT"))
	write("readonly.txt", []byte("read only\n"))
	setxattr("readonly.txt", "system.ntfs_attrib_be", []byte{0, 0, 0, 0x21})
	old := time.Date(1999, 12, 31, 23, 59, 58, 123456700, time.UTC)
	if err := os.Chtimes(filepath.Join(mnt, "a/b/c/d/deep.txt"), old.Add(time.Hour), old); err != nil {
		t.Fatal(err)
	}
	unmount(t, mnt)
	runCmd(t, "ntfsfix", "-n", img)

	rd := openReader(t, img)
	got := map[string]*cfs.Entry{}
	contents := map[string][]byte{}
	err = walk(rd, func(p string, e *cfs.Entry) error {
		got[p] = e
		if e.Type == cfs.TypeFile {
			b, err := readAll(rd, e)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			contents[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Compare with what ntfs-3g shows, read-only.
	ro := mount(t, img, "ro")
	seen := map[string]bool{}
	var diffs []string
	differ := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	err = filepath.WalkDir(ro, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ro, p)
		seen[rel] = true
		e := got[rel]
		if e == nil {
			differ("%s: not listed", rel)
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if e.Inode != st.Ino && rel != "." {
			differ("%s: inode %d, ntfs-3g %d", rel, e.Inode, st.Ino)
		}
		for _, tm := range []struct {
			what string
			got  int64
			ts   syscall.Timespec
		}{{"mtime", e.MTime, st.Mtim}, {"atime", e.ATime, st.Atim}, {"ctime", e.CTime, st.Ctim}} {
			if tm.got != tm.ts.Nano() {
				differ("%s: %s %v, ntfs-3g %v", rel, tm.what, time.Unix(0, tm.got).UTC(), time.Unix(0, tm.ts.Nano()).UTC())
			}
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			if e.Type != cfs.TypeDir || e.Mode != 0o755 {
				differ("%s: %s %o, ntfs-3g a folder", rel, e.Type, e.Mode)
			}
		case syscall.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			want := target
			if rel == "junction" { // ntfs-3g maps drive letters under the mount
				want = `C:\Users\Public`
				if !strings.HasSuffix(target, "/.NTFS-3G/C:/Users/Public") {
					differ("%s: ntfs-3g shows %q", rel, target)
				}
			}
			if e.Type != cfs.TypeSymlink || e.LinkTarget != want || e.Size != int64(len(want)) {
				differ("%s: %s to %q, ntfs-3g a link to %q", rel, e.Type, e.LinkTarget, target)
			}
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			wantMode := uint32(0o644)
			if rel == "readonly.txt" {
				wantMode = 0o444
			}
			if e.Type != cfs.TypeFile || e.Size != st.Size || !bytes.Equal(contents[rel], b) || e.Mode != wantMode {
				differ("%s: %s %o of %d bytes (%s), ntfs-3g %d (%s)", rel, e.Type, e.Mode, e.Size, sha(contents[rel]), st.Size, sha(b))
			}
			// ntfs-3g counts DOS names as links.
			if wantLinks := uint64(st.Nlink); e.Links != wantLinks && rel != "A Long File Name.txt" {
				differ("%s: %d links, ntfs-3g %d", rel, e.Links, wantLinks)
			}
		default:
			differ("%s: mode %o", rel, st.Mode)
		}
		// Streams: ntfs-3g shows them as user.* xattrs, those it can.
		var wantX map[string][]byte
		if d.Type()&os.ModeSymlink == 0 {
			wantX = streamXattrs(t, p)
		}
		for _, x := range e.Xattrs {
			name := "user." + strings.TrimPrefix(x.Name, streamPrefix)
			if want, ok := wantX[name]; ok && want != nil && !bytes.Equal(want, x.Value) {
				differ("%s: stream %s of %d bytes, ntfs-3g %d", rel, x.Name, len(x.Value), len(want))
			}
			delete(wantX, name)
		}
		for name := range wantX {
			differ("%s: no stream %s", rel, name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range got {
		if !seen[p] {
			differ("%s: listed, ntfs-3g does not show it", p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%d differences:\n%s", len(diffs), strings.Join(diffs[:min(30, len(diffs))], "\n"))
	}

	// What ntfs-3g cannot show, or shows otherwise.
	if n := len(got); n < 5030 {
		t.Errorf("only %d entries", n)
	}
	orig, second, third := got["links/original.txt"], got["links/second.txt"], got["a/third.txt"]
	if orig.Links != 3 || second.Inode != orig.Inode || third.Inode != orig.Inode || orig.Sys != third.Sys {
		t.Errorf("hard links: %+v %+v %+v", orig, second, third)
	}
	if e := got["A Long File Name.txt"]; e.Links != 1 || got["ALONGF~1.TXT"] != nil {
		t.Errorf("a file with a DOS name: %+v, DOS name listed: %v", e, got["ALONGF~1.TXT"] != nil)
	}
	wantX := []cfs.Xattr{{Name: "ntfs.stream.big"}, {Name: "ntfs.stream.empty", Value: []byte{}}, {Name: "ntfs.stream.small", Value: []byte("data")}}
	if x := got["streams.txt"].Xattrs; fmt.Sprint(x) != fmt.Sprint(wantX) {
		t.Errorf("streams %q, want %q", x, wantX)
	}
	if x := got["folder with stream"].Xattrs; len(x) != 1 || string(x[0].Value) != "a folder's stream" {
		t.Errorf("a folder's stream: %q", x)
	}
	if e := got["a/b/c/d/deep.txt"]; e.MTime != old.UnixNano() || e.ATime != old.Add(time.Hour).UnixNano() {
		t.Errorf("times set: mtime %v, atime %v", time.Unix(0, e.MTime).UTC(), time.Unix(0, e.ATime).UTC())
	}
	// The compressed files are compressed, and the units of each kind are
	// there.
	v := openFile(t, img)
	for _, name := range []string{"text.txt", "random.bin", "mixed.bin"} {
		f, err := v.readFile(int64(got["compressed/"+name].Inode))
		if err != nil {
			t.Fatal(err)
		}
		d, err := v.openAttr(f, attrData, "")
		if err != nil {
			t.Fatal(err)
		}
		c, ok := d.(*compressedReader)
		if !ok {
			t.Errorf("compressed/%s is not compressed", name)
			continue
		}
		kinds := map[string]int{}
		for u := int64(0); u*c.unitSize < c.Size(); u++ {
			stored, holes, _ := c.unitRuns(u)
			switch {
			case holes == 0:
				kinds["stored"]++
			case stored == 0:
				kinds["zero"]++
			default:
				kinds["compressed"]++
			}
		}
		t.Logf("compressed/%s: %v units", name, kinds)
		if name == "mixed.bin" && (kinds["stored"] == 0 || kinds["zero"] == 0 || kinds["compressed"] == 0) {
			t.Errorf("compressed/mixed.bin has units %v, want every kind", kinds)
		}
	}
	// A file extended by truncate: past the initialized size, zeros.
	// (ntfs-3g initializes compressed files whole.)
	for _, p := range []string{"sparse.bin"} {
		if f, err := v.readFile(int64(got[p].Inode)); err != nil {
			t.Fatal(err)
		} else if a := f.first(attrData, ""); a.Flags&(flagSparse|flagCompressed) == 0 || a.InitSize >= a.DataSize {
			t.Errorf("%s: flags %#x, initialized size %d of %d", p, a.Flags, a.InitSize, a.DataSize)
		}
	}
}
