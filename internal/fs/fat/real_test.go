//go:build linux

package fat

import (
	"os"
	"strings"
	"testing"
)

// TestRealFAT makes FAT volumes with mkfs.vfat on random bytes, fills them
// with mtools, and checks Probe against blkid and fsck.vfat; then it copies
// only the used extents into zeros and checks that the copy passes fsck.vfat
// and that every file reads back the same.
func TestRealFAT(t *testing.T) {
	requireRoot(t, "mkfs.vfat", "fsck.vfat", "mcopy", "mdel", "mshowfat", "blkid")
	for _, tc := range []struct {
		name  string
		size  int64
		args  []string
		typ   string
		files bool // mtools refuses FAT32 volumes with too few clusters
	}{
		{"fat12", 4 << 20, []string{"-F", "12"}, "fat12", true},
		{"fat16", 32 << 20, []string{"-F", "16"}, "fat16", true},
		{"fat16-4k-sectors", 32 << 20, []string{"-F", "16", "-S", "4096", "-s", "1"}, "fat16", true},
		{"fat32", 64 << 20, []string{"-F", "32", "-s", "1"}, "fat32", true},
		{"fat32-one-fat", 80 << 20, []string{"-F", "32", "-s", "2", "-f", "1"}, "fat32", true},
		{"fat32-few-clusters", 16 << 20, []string{"-F", "32"}, "fat32", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := randomImage(t, tc.size)
			label := strings.ToUpper(strings.ReplaceAll(tc.name, "-", " "))
			label = label[:min(11, len(label))]
			args := append(append([]string{}, tc.args...), "-n", label, "-i", "C0FFEE42", img)
			run(t, "mkfs.vfat", args...)
			a := probeFile(t, img, Probe)
			var want map[string]string
			if tc.files {
				want = writeFiles(t, img, 1<<20, int64(a.BlockSize))
				a = probeFile(t, img, Probe)
			}

			if a.Type != tc.typ || strings.ToLower(blkid(t, img, "VERSION")) != tc.typ {
				t.Errorf("Type %q, blkid VERSION %q, want %q", a.Type, blkid(t, img, "VERSION"), tc.typ)
			}
			if want := blkid(t, img, "LABEL"); a.Label != want || a.Label != strings.TrimRight(label, " ") {
				t.Errorf("Label %q, blkid %q, mkfs %q", a.Label, want, label)
			}
			if want := blkid(t, img, "UUID"); a.UUID != want || a.UUID != "C0FF-EE42" {
				t.Errorf("UUID %q, blkid %q", a.UUID, want)
			}
			if a.Size != tc.size {
				t.Errorf("Size %d, want %d", a.Size, tc.size)
			}

			// The used bytes are the metadata area plus the clusters that
			// fsck.vfat counts as used: exactly, since both count the FAT
			// entries that are not free (no cluster is marked bad here).
			boot := make([]byte, 512)
			readFileAt(t, img, boot, 0)
			v, err := parseBoot(boot)
			if err != nil {
				t.Fatal(err)
			}
			if a.BlockSize != int(v.clusterSize) {
				t.Errorf("BlockSize %d, cluster size %d", a.BlockSize, v.clusterSize)
			}
			usedClusters, totalClusters := fsckClusters(t, img)
			if totalClusters != v.clusters {
				t.Errorf("%d clusters, fsck.vfat says %d", v.clusters, totalClusters)
			}
			if wantUsed := v.dataStart + usedClusters*v.clusterSize; a.UsedBytes() != wantUsed {
				t.Errorf("UsedBytes %d, want %d (%d bytes before the data area, %d clusters of %d used)",
					a.UsedBytes(), wantUsed, v.dataStart, usedClusters, v.clusterSize)
			}
			t.Logf("%s: %d clusters of %d bytes, %d used; %d extents, %d of %d bytes used",
				a.Type, totalClusters, v.clusterSize, usedClusters, len(a.Used), a.UsedBytes(), a.Size)

			if tc.files && len(a.Used) < 10 {
				t.Errorf("only %d used extents: the holes the test leaves are not there", len(a.Used))
			}

			cp := copyUsed(t, img, a)
			fsckClusters(t, cp) // fails t unless the copy is consistent
			if got := probeFile(t, cp, Probe); got.UsedBytes() != a.UsedBytes() || got.Label != a.Label || got.UUID != a.UUID {
				t.Errorf("the copy probes as %+v", got)
			}
			if tc.files {
				compareTrees(t, want, readFiles(t, img))
				compareTrees(t, want, readFiles(t, cp))
				// The file reader reads the same from the image and from
				// the copy of its used bytes only.
				compareTrees(t, want, readerTree(t, openImage(t, img)))
				compareTrees(t, want, readerTree(t, openImage(t, cp)))
			}
		})
	}
}

func readFileAt(t *testing.T, name string, buf []byte, off int64) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
}
