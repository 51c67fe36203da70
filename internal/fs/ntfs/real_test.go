//go:build linux

package ntfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	cfs "cairn/internal/fs"
)

// TestRealNTFS makes NTFS volumes with mkntfs on random bytes, fills them
// through ntfs-3g, and checks Probe against blkid and ntfscluster; then it
// copies only the used extents into zeros and checks that the copy passes
// ntfsfix and that every file and named stream reads back the same.
func TestRealNTFS(t *testing.T) {
	requireRoot(t, "mkntfs", "ntfs-3g", "ntfsfix", "ntfscluster", "blkid", "setfattr", "mountpoint")
	for _, tc := range []struct {
		name     string
		size     int64
		args     []string
		compress bool // ntfs-3g compresses with clusters of up to 4 KiB
		// holes: the test's deleted files leave holes in the used extents
		// (with clusters as big as its writes, ntfs-3g places files
		// otherwise); attrList: a file has an attribute list.
		holes, attrList bool
	}{
		{"ntfs", 64 << 20, nil, true, true, true},
		{"512b-clusters", 32 << 20, []string{"-c", "512"}, true, true, false}, // MFT records span two clusters
		{"4k-sectors", 64 << 20, []string{"-s", "4096"}, true, true, false},
		{"128k-clusters", 128 << 20, []string{"-c", "131072"}, false, false, false}, // sectors per cluster as a shift
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := randomImage(t, tc.size)
			label := "Cairn " + tc.name + " é✓"
			runCmd(t, "mkntfs", append(append([]string{"-F", "-Q", "-L", label}, tc.args...), img)...)
			a := probeFile(t, img, Probe)
			mnt := mount(t, img, "")
			want := writeFiles(t, mnt, 2<<20, int64(a.BlockSize), tc.compress)
			checkFileReader(t, img, mnt, tc.attrList)
			unmount(t, mnt)
			runCmd(t, "ntfsfix", "-n", img)
			a = probeFile(t, img, Probe)

			if a.Type != "ntfs" || blkid(t, img, "TYPE") != "ntfs" {
				t.Errorf("Type %q, blkid %q", a.Type, blkid(t, img, "TYPE"))
			}
			if want := blkid(t, img, "LABEL"); a.Label != want || a.Label != label {
				t.Errorf("Label %q, blkid %q, mkntfs %q", a.Label, want, label)
			}
			if want := blkid(t, img, "UUID"); a.UUID != want || len(a.UUID) != 16 {
				t.Errorf("UUID %q, blkid %q", a.UUID, want)
			}
			if a.Size != tc.size {
				t.Errorf("Size %d, want %d", a.Size, tc.size)
			}

			// The used bytes are the clusters ntfscluster does not count
			// as free, plus the backup boot sector past the last cluster:
			// exactly, since both read the same bitmap.
			volBytes, freeBytes := ntfsclusterInfo(t, img)
			v := openFile(t, img)
			if a.BlockSize != int(v.clusterSize) || volBytes != v.clusters*v.clusterSize {
				t.Errorf("BlockSize %d, %d clusters; ntfscluster: %d bytes", a.BlockSize, v.clusters, volBytes)
			}
			if wantUsed := volBytes - freeBytes + v.sectorSize; a.UsedBytes() != wantUsed {
				t.Errorf("UsedBytes %d, want %d (%d bytes, %d free, a %d-byte backup boot sector)",
					a.UsedBytes(), wantUsed, volBytes, freeBytes, v.sectorSize)
			}
			if tc.holes && len(a.Used) < 10 {
				t.Errorf("only %d used extents: the holes the test leaves are not there", len(a.Used))
			}
			t.Logf("%d clusters of %d bytes; %d extents, %d of %d bytes used",
				v.clusters, v.clusterSize, len(a.Used), a.UsedBytes(), a.Size)

			cp := copyUsed(t, img, a)
			runCmd(t, "ntfsfix", "-n", cp)
			if got := probeFile(t, cp, Probe); got.UsedBytes() != a.UsedBytes() || got.Label != a.Label || got.UUID != a.UUID {
				t.Errorf("the copy probes as %+v", got)
			}
			compareTrees(t, want, hashTree(t, mount(t, img, "ro")))
			compareTrees(t, want, hashTree(t, mount(t, cp, "ro")))
			// The file reader reads the same from the image and from
			// the copy of its used bytes only.
			compareTrees(t, want, readerTree(t, openReader(t, img)))
			compareTrees(t, want, readerTree(t, openReader(t, cp)))
		})
	}
}

// checkFileReader reads every file and named stream under mnt, the ntfs-3g
// mount of img, through the MFT record parser and the runlist reader (an
// inode number from ntfs-3g is the MFT record number) and compares them with
// what ntfs-3g reads. Compressed files are refused, not misread. If
// attrList, some file must have an attribute list (its $DATA split over MFT
// records).
func checkFileReader(t *testing.T, img, mnt string, attrList bool) {
	t.Helper()
	syscall.Sync()
	v := openFile(t, img)
	var files, streams, lists, mostRuns int
	var mostRunsFile string
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		ino := int64(info.Sys().(*syscall.Stat_t).Ino)
		rec, err := v.readRecord(ino)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if rec.find(attrAttributeList, "") != nil {
			lists++
		}
		if a := rec.find(attrData, ""); a != nil && len(a.Runs) > mostRuns {
			mostRuns, mostRunsFile = len(a.Runs), p
		}
		wantData := map[string][]byte{}
		if wantData[""], err = os.ReadFile(p); err != nil {
			return err
		}
		for name, val := range xattrs(t, p) {
			wantData[strings.TrimPrefix(name, "user.")] = val
		}
		for stream, want := range wantData {
			d, err := v.openData(ino, rec, stream)
			if err != nil {
				if strings.Contains(p, "compressed") && strings.Contains(err.Error(), "compressed") {
					continue
				}
				t.Fatalf("%s, stream %q: %v", p, stream, err)
			}
			got := make([]byte, d.Size())
			if _, err := d.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatalf("%s, stream %q: %v", p, stream, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, stream %q: read %d bytes (sha256 %s), ntfs-3g %d (%s)", p, stream,
					len(got), sum(got), len(want), sum(want))
			}
			if stream == "" {
				files++
			} else {
				streams++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read %d files and %d named streams through the MFT, %d with an attribute list; %s has %d runs in its base record",
		files, streams, lists, mostRunsFile, mostRuns)
	if files < 50 || streams < 2 {
		t.Errorf("only %d files and %d streams read", files, streams)
	}
	if attrList && lists == 0 {
		t.Error("no file has an attribute list: the test's fragmentation did not work")
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// openFile opens the volume of the image file img.
func openFile(t *testing.T, img string) *volume {
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
	v, err := open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openReader opens the file reader of the image file img.
func openReader(t *testing.T, img string) cfs.Reader {
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

// ntfsclusterInfo returns the volume's size and free bytes as ntfscluster -i
// reports them.
func ntfsclusterInfo(t *testing.T, img string) (volume, free int64) {
	t.Helper()
	out := runCmd(t, "ntfscluster", "-i", img)
	field := func(name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:\s*(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("ntfscluster -i: no %q in\n%s", name, out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return field("bytes per volume"), field("bytes of free space")
}
