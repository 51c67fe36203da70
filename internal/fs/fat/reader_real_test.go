//go:build linux

package fat

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	cfs "cairn/internal/fs"
)

// mtools runs an mtools command with UTF-8 names and times in UTC, and
// returns its output; it fails t on error.
func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8", "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// openImage opens the reader of the image file img.
func openImage(t *testing.T, img string) cfs.Reader {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// entryInfo is what the test compares of an entry.
type entryInfo struct {
	typ   string
	size  int64
	sum   string
	mtime time.Time
	mode  uint32
}

func (e entryInfo) String() string {
	return fmt.Sprintf("%s %d %s %s %o", e.typ, e.size, e.sum, e.mtime.UTC().Format(time.RFC3339Nano), e.mode)
}

// TestReaderReal makes FAT volumes with mkfs.vfat, fills them with mtools
// (long, Unicode and lower-case 8.3 names, nested folders, a folder of many
// clusters, empty, big and fragmented files, a read-only file, set times),
// and checks that the reader lists every entry with the name, type, size,
// content and modification time that mtools extracts, names as mdir lists
// them, and the times and modes set.
func TestReaderReal(t *testing.T) {
	requireRoot(t, "mkfs.vfat", "mcopy", "mmd", "mdel", "mdir", "mattrib", "mshowfat")
	for _, tc := range []struct {
		name string
		size int64
		args []string
		big  int64
	}{
		{"fat12", 4 << 20, []string{"-F", "12"}, 1 << 20},
		{"fat16", 48 << 20, []string{"-F", "16", "-s", "4"}, 6 << 20},
		{"fat32", 100 << 20, []string{"-F", "32", "-s", "1"}, 9 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := randomImage(t, tc.size)
			run(t, "mkfs.vfat", append(append([]string{}, tc.args...), "-n", "READER", img)...)
			src := t.TempDir()
			stamp := time.Date(2003, 4, 5, 6, 7, 9, 0, time.UTC) // an odd second
			n := 0
			write := func(rel string, data []byte) {
				p := filepath.Join(src, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				n++
				mt := stamp.Add(time.Duration(n) * 61 * time.Second)
				if err := os.Chtimes(p, mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			random := func(size int64) []byte {
				b := make([]byte, size)
				rng(t).Read(b)
				return b
			}
			long := strings.Repeat("a long name, ", 19) + "end.txt" // 254 characters
			names := []string{
				"readme.txt", "lower.TXT", "UPPER.txt", "MixedCase.Txt", "NOEXT", "two.dots.in.name",
				"with space.txt", "Ünïcödé ñame.txt", "日本語のファイル名.txt", "Ελληνικά.doc", long,
			}
			for i, name := range names {
				write(name, []byte(fmt.Sprintf("file %d: %s\n", i, name)))
			}
			write("empty.bin", nil)
			write("big.bin", random(tc.big))
			write("a/b/c/d/e/deep.txt", []byte("deep\n"))
			write("a/b/sibling.bin", random(3000))
			for i := range 150 { // 150 long names: a folder of many clusters
				write(fmt.Sprintf("many/a file with a long name number %03d.txt", i), []byte(strings.Repeat("x", i)))
			}
			write("readonly.txt", []byte("do not touch\n"))
			args := []string{"-s", "-m", "-i", img}
			entries, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				args = append(args, filepath.Join(src, e.Name()))
			}
			mtools(t, "mcopy", append(args, "::/")...)
			mtools(t, "mattrib", "-i", img, "+r", "::/readonly.txt")

			// A fragmented file: small files, every other one deleted,
			// then a file bigger than a hole.
			frag := filepath.Join(src, "frag")
			cs := int64(clusterSize(t, img))
			for i := range 12 {
				write(fmt.Sprintf("frag/p%02d", i), random(2*cs))
			}
			mtools(t, "mcopy", "-s", "-m", "-i", img, frag, "::/")
			// A filler takes all but two clusters of the free space, so
			// that an allocator going on from its last allocation (FAT32's
			// FSInfo hint) wraps around into the holes.
			write("filler", make([]byte, freeBytes(t, img, cs)-2*cs))
			mtools(t, "mcopy", "-m", "-i", img, filepath.Join(src, "filler"), "::/")
			for i := 0; i < 12; i += 2 {
				mtools(t, "mdel", "-i", img, fmt.Sprintf("::/frag/p%02d", i))
			}
			write("frag/fragmented.bin", random(7*cs+5))
			mtools(t, "mcopy", "-m", "-i", img, filepath.Join(frag, "fragmented.bin"), "::/frag/")

			rd := openImage(t, img)
			got := map[string]entryInfo{}
			var fragSpans int
			inodes := map[uint64]string{}
			err = walk(rd, func(p string, e *cfs.Entry) error {
				info := entryInfo{typ: e.Type, mode: e.Mode}
				if other, ok := inodes[e.Inode]; ok || e.Links != 1 {
					t.Errorf("%s: inode %d (also %q), %d links", p, e.Inode, other, e.Links)
				}
				inodes[e.Inode] = p
				// mcopy -m sets the creation time to the modification
				// time, and the access date to its day.
				if e.Type == cfs.TypeFile && (e.CTime != e.MTime || e.ATime != time.Unix(0, e.MTime).Truncate(24*time.Hour).UnixNano()) {
					t.Errorf("%s: mtime %v, ctime %v, atime %v", p, time.Unix(0, e.MTime), time.Unix(0, e.CTime), time.Unix(0, e.ATime))
				}
				if p != "." {
					info.mtime = time.Unix(0, e.MTime)
				}
				if e.Type == cfs.TypeFile {
					b, err := readAll(rd, e)
					if err != nil {
						return err
					}
					info.size, info.sum = e.Size, sum(b)
					if p == "frag/fragmented.bin" {
						f, _ := rd.Open(e)
						fragSpans = len(f.(*fileReader).spans)
					}
				}
				got[p] = info
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fragSpans < 3 {
				t.Errorf("frag/fragmented.bin has %d spans of clusters, want a fragmented file", fragSpans)
			}

			// What mtools extracts, with its times.
			out := t.TempDir()
			mtools(t, "mcopy", "-s", "-n", "-m", "-i", img, "::/*", out)
			want := map[string]entryInfo{".": {typ: cfs.TypeDir, mode: 0o755}}
			err = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err != nil || p == out {
					return err
				}
				rel, _ := filepath.Rel(out, p)
				st, err := d.Info()
				if err != nil {
					return err
				}
				info := entryInfo{typ: cfs.TypeDir, mode: 0o755, mtime: st.ModTime()}
				if !d.IsDir() {
					b, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					info = entryInfo{typ: cfs.TypeFile, mode: 0o644, size: st.Size(), sum: sum(b), mtime: st.ModTime()}
					if rel == "readonly.txt" {
						info.mode = 0o444
					}
					// The times set, at FAT's 2-second resolution.
					if srcSt, err := os.Stat(filepath.Join(src, rel)); err != nil {
						return err
					} else if mt := srcSt.ModTime().Truncate(2 * time.Second); !mt.Equal(info.mtime) {
						t.Errorf("%s: mtools extracts mtime %v, set %v", rel, info.mtime, mt)
					}
				}
				want[rel] = info
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			compareInfo(t, want, got)

			// mdir's names, recursively.
			var mdirNames []string
			for _, line := range strings.Split(strings.TrimSpace(mtools(t, "mdir", "-/", "-b", "-i", img, "::/")), "\n") {
				mdirNames = append(mdirNames, strings.TrimSuffix(strings.TrimPrefix(line, "::/"), "/"))
			}
			var gotNames []string
			for p := range got {
				if p != "." {
					gotNames = append(gotNames, p)
				}
			}
			sort.Strings(mdirNames)
			sort.Strings(gotNames)
			if strings.Join(mdirNames, "\n") != strings.Join(gotNames, "\n") {
				t.Errorf("mdir lists\n%s\nthe reader\n%s", strings.Join(mdirNames, "\n"), strings.Join(gotNames, "\n"))
			}
			if len(gotNames) < 175 {
				t.Errorf("only %d entries", len(gotNames))
			}
			t.Logf("%d entries read and compared", len(gotNames))
		})
	}
}

// compareInfo fails t unless the trees are the same.
func compareInfo(t *testing.T, want, got map[string]entryInfo) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g.String() != w.String() {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %v", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%d differences:\n%s", len(diffs), strings.Join(diffs[:min(20, len(diffs))], "\n"))
	}
}

// clusterSize returns the cluster size of the FAT image img.
func clusterSize(t *testing.T, img string) int {
	t.Helper()
	boot := make([]byte, 512)
	readFileAt(t, img, boot, 0)
	v, err := parseBoot(boot)
	if err != nil {
		t.Fatal(err)
	}
	return int(v.clusterSize)
}
