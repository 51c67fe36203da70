//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cairn/internal/disktest"
)

// An image snapshot that lost a pack: repair snapshots replaces the lost chunks by
// zeros and records where; image restore then writes every other byte as before,
// zeros there, and names the ranges and the partition.
func TestRepairImageSnapshot(t *testing.T) {
	e := newEnv(t)
	d := disktest.MakeGPT(t, filepath.Join(e.dir, "disk.img"), 48*mib, []disktest.Partition{
		{Size: 44 * mib, Type: "8300", Name: "root", FS: "ext4", Label: "root", Fill: func(t testing.TB, mnt string) {
			disktest.RandomFile(t, filepath.Join(mnt, "a.bin"), 12*mib)
			disktest.RandomFile(t, filepath.Join(mnt, "b.bin"), 12*mib)
		}},
	})
	e.must("init")
	e.must("image", "create", d.Path)
	good := filepath.Join(e.dir, "good.img")
	e.must("image", "restore", "latest", good)

	// Lose one data pack.
	var packs []string
	_ = filepath.Walk(filepath.Join(e.repo, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 4*mib {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) < 2 {
		t.Fatalf("%d data packs; the test wants one lost of several", len(packs))
	}
	if err := os.Remove(packs[0]); err != nil {
		t.Fatal(err)
	}
	if r := e.run("image", "restore", "latest", filepath.Join(e.dir, "fails.img")); r.code != 1 || !strings.Contains(r.stderr, "chunk") {
		t.Fatalf("restore of a damaged image: exit %d\n%s", r.code, r.stderr)
	}
	e.must("repair", "index")
	out := e.must("repair", "snapshots", "--forget", "--json")
	lines := jsonLines(t, out)
	if len(lines) != 2 || lines[0]["status"] != "repaired" || lines[0]["removed"] != true {
		t.Fatalf("repair snapshots:\n%s", out)
	}
	// Which regions the pack held chunks of depends on how the chunks were packed.
	var regions []string
	for _, d := range lines[0]["damaged"].([]any) {
		regions = append(regions, d.(map[string]any)["path"].(string))
	}
	if len(regions) == 0 {
		t.Fatalf("no damage listed:\n%s", out)
	}
	var lost [][2]int64
	for _, l := range lines[0]["lost_ranges"].([]any) {
		m := l.(map[string]any)
		lost = append(lost, [2]int64{int64(m["offset"].(float64)), int64(m["length"].(float64))})
	}
	if len(lost) == 0 {
		t.Fatal("no lost ranges")
	}
	e.must("check", "--read-data")
	show := e.must("image", "show", "latest")
	if !strings.Contains(show, fmt.Sprintf("repaired: %d ranges were lost", len(lost))) {
		t.Errorf("image show does not tell the lost ranges:\n%s", show)
	}
	for _, l := range lost {
		if !strings.Contains(show, fmt.Sprintf("bytes %d to ", l[0])) {
			t.Errorf("image show does not name the lost bytes %d+%d:\n%s", l[0], l[1], show)
		}
	}

	repaired := filepath.Join(e.dir, "repaired.img")
	r := e.run("image", "restore", "latest", repaired)
	if r.code != 3 || !strings.Contains(r.stderr, "written as zeros") {
		t.Fatalf("restore of the repaired image: exit %d\n%s", r.code, r.stderr)
	}
	for _, reg := range regions {
		if !strings.Contains(r.stderr, reg) {
			t.Errorf("restore does not name %s:\n%s", reg, r.stderr)
		}
	}
	// Every byte outside the lost ranges as before; zeros inside.
	a, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(repaired)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("sizes %d and %d", len(a), len(b))
	}
	var pos, zeroed int64
	for _, l := range lost {
		if !bytes.Equal(a[pos:l[0]], b[pos:l[0]]) {
			t.Fatalf("bytes %d to %d differ outside the lost ranges", pos, l[0])
		}
		if !bytes.Equal(b[l[0]:l[0]+l[1]], make([]byte, l[1])) {
			t.Fatalf("lost bytes %d+%d are not zeros", l[0], l[1])
		}
		if bytes.Equal(a[l[0]:l[0]+l[1]], b[l[0]:l[0]+l[1]]) {
			t.Errorf("lost bytes %d+%d were zeros before: nothing was lost there", l[0], l[1])
		}
		zeroed += l[1]
		pos = l[0] + l[1]
	}
	if !bytes.Equal(a[pos:], b[pos:]) {
		t.Fatalf("bytes after %d differ", pos)
	}
	if !strings.Contains(r.stderr, "bytes ") {
		t.Errorf("the ranges are not named:\n%s", r.stderr)
	}
	// One partition alone: its own offsets.
	part := filepath.Join(e.dir, "part.img")
	r = e.run("image", "restore", "--partition", "1", "latest", part)
	if hitPart := slices.Contains(regions, "partition 1"); hitPart && (r.code != 3 || !strings.Contains(r.stderr, "of partition 1")) ||
		!hitPart && r.code != 0 {
		t.Fatalf("restore of the partition (damaged: %v): exit %d\n%s", regions, r.code, r.stderr)
	}
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pa, _ := io.ReadAll(io.NewSectionReader(f, 0, d.Parts[0].Size))
	if !bytes.Equal(pa, b[d.Parts[0].Start:d.Parts[0].Start+d.Parts[0].Size]) {
		t.Error("the partition restored alone differs from the disk's")
	}
	t.Logf("%d bytes lost in %d ranges", zeroed, len(lost))
}
