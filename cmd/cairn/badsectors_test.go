//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn/internal/disktest"
)

// A disk with bad sectors (served through FUSE, whose reads of them fail with EIO)
// is imaged all the same: the bad sectors are stored as zeros, named, recorded in
// the snapshot, and the image exits 3. A restore writes everything else byte for
// byte, names the zeroed runs and exits 3. Once the disk reads again, the next
// image stores the sectors' real bytes.
func TestImageOfDiskWithBadSectors(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "disk.raw")
	data := make([]byte, 16<<20) // no partition table, no filesystem: every byte is read
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := [][2]int64{{5<<20 + 512, 1024}, {9 << 20, 4096}}
	disk, heal := disktest.BadSectors(t, src, bad)

	e.must("init")
	r := e.run("image", "create", "--json", disk)
	if r.code != 3 {
		t.Fatalf("image of a disk with bad sectors: exit %d, want 3\n%s", r.code, r.stderr)
	}
	for _, b := range bad {
		if !strings.Contains(r.stderr, fmt.Sprintf("bytes %d to %d cannot be read", b[0], b[0]+b[1])) {
			t.Errorf("the warnings do not name bytes %d+%d:\n%s", b[0], b[1], r.stderr)
		}
	}
	var sum struct {
		Unreadable []struct{ Offset, Length int64 } `json:"unreadable"`
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || len(sum.Unreadable) != len(bad) {
		t.Fatalf("summary %q: %v, want %d unreadable runs", lines[len(lines)-1], err, len(bad))
	}
	show := e.must("image", "show", "latest")
	if !strings.Contains(show, "2 ranges could not be read from the source") {
		t.Errorf("image show does not tell the unreadable runs:\n%s", show)
	}

	want := append([]byte(nil), data...)
	for _, b := range bad {
		clear(want[b[0] : b[0]+b[1]])
	}
	out := filepath.Join(e.dir, "restored.img")
	r = e.run("image", "restore", "latest", out)
	if r.code != 3 || !strings.Contains(r.stderr, "could not be read from the source") {
		t.Fatalf("restore: exit %d, want 3 and the runs named\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("the restore is not the source with its bad sectors as zeros")
	}

	heal()
	r = e.run("image", "create", disk)
	if r.code != 0 {
		t.Fatalf("image of the healed disk: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	e.must("image", "restore", "latest", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("the image of the healed disk does not restore the source")
	}
}
