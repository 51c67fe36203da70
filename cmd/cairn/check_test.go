package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// largestPack returns the path of the biggest pack file of a local repository.
func largestPack(t *testing.T, repo string) string {
	t.Helper()
	var best string
	var size int64
	_ = filepath.Walk(filepath.Join(repo, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if best == "" {
		t.Fatal("no pack files")
	}
	return best
}

// check names a damaged pack and the files it hits; restore of the hit file fails
// with its name while the other files restore.
func TestCheckFindsDamageAndNamesFiles(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "big.bin"), randomData(t, 6<<20))
	writeFile(t, filepath.Join(src, "small.txt"), []byte("small and fine"))
	e.must("init")
	e.must("backup", src)
	e.must("check", "--read-data")

	pack := largestPack(t, e.repo)
	if err := os.Chmod(pack, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x40
	if err := os.WriteFile(pack, data, 0o400); err != nil {
		t.Fatal(err)
	}
	r := e.run("check", "--read-data")
	if r.code != 1 || !strings.Contains(r.stdout, "pack "+filepath.Base(pack)[:8]) || !strings.Contains(r.stdout, src+"/big.bin") {
		t.Fatalf("check --read-data after damage: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	target := filepath.Join(e.dir, "restore")
	r = e.run("restore", "latest:"+src, "--target", target)
	if r.code != 3 || !strings.Contains(r.stderr, "big.bin") {
		t.Fatalf("restore of a damaged file: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(target, "small.txt")); err != nil || string(b) != "small and fine" {
		t.Fatalf("the undamaged file was not restored: %v", err)
	}

	// A missing pack is found without --read-data.
	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	r = e.run("check")
	if r.code != 1 || !strings.Contains(r.stdout, "missing") || !strings.Contains(r.stdout, src+"/big.bin") {
		t.Fatalf("check after deleting a pack: exit %d\n%s", r.code, r.stdout)
	}
}
