package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The corruption tests damage each kind of repository object (pack, index,
// snapshot, key, config) in three ways: one byte flipped, the file cut to half its
// size, the file deleted. For each they check what check --read-data says, what a
// restore of the affected and of the unaffected files does, and that the repair
// path for that kind brings check back to clean for what remains.

// damageModes are the three ways a stored file is damaged.
var damageModes = []struct {
	name string
	do   func(t *testing.T, path string)
}{
	{"flip", func(t *testing.T, p string) {
		rewriteFile(t, p, func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	}},
	{"truncate", func(t *testing.T, p string) { rewriteFile(t, p, func(b []byte) []byte { return b[:len(b)/2] }) }},
	{"delete", func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}},
}

// rewriteFile replaces a read-only repository file with change(its bytes).
func rewriteFile(t *testing.T, p string, change func([]byte) []byte) {
	t.Helper()
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, change(b), 0o400); err != nil {
		t.Fatal(err)
	}
}

// corruptFixture is a repository with two snapshots of a small tree: the first of
// big.bin, small.txt and dir/other.bin; the second adds new.bin.
type corruptFixture struct {
	*env
	src            string
	first, second  string            // snapshot ids
	want           map[string][]byte // relative path -> content, as in the second snapshot
	firstPacks     []string          // pack paths written by the first backup
	firstIndex     string            // the index file written by the first backup
	firstSnapshot  string            // its snapshot file
	secondPassword string            // set by withSecondKey
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	f := &corruptFixture{env: newEnv(t), want: map[string][]byte{}}
	f.src = filepath.Join(f.dir, "src")
	for name, n := range map[string]int{"big.bin": 3 << 20, "dir/other.bin": 3 << 19} {
		f.want[name] = randomData(t, n)
	}
	f.want["small.txt"] = []byte("small and fine\n")
	for name, b := range f.want {
		writeFile(t, filepath.Join(f.src, name), b)
	}
	f.must("init")
	f.first = summary(t, f.must("backup", "--json", f.src))["snapshot_id"].(string)
	f.firstPacks = repoFiles(t, f.repo, "data")
	f.firstIndex = repoFiles(t, f.repo, "index")[0]
	f.firstSnapshot = filepath.Join(f.repo, "snapshots", f.first)
	f.want["new.bin"] = randomData(t, 1<<20)
	writeFile(t, filepath.Join(f.src, "new.bin"), f.want["new.bin"])
	f.second = summary(t, f.must("backup", "--json", f.src))["snapshot_id"].(string)
	f.must("check", "--read-data")
	return f
}

// repoFiles returns the paths of the files of one folder of the repository.
func repoFiles(t *testing.T, repo, folder string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(filepath.Join(repo, folder), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("no files in %s/", folder)
	}
	return out
}

// largest returns the biggest of paths.
func largest(t *testing.T, paths []string) string {
	t.Helper()
	var best string
	var size int64 = -1
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
	}
	return best
}

// checkJSON runs check --read-data --json and returns its exit code, problems and
// the relative paths of the second snapshot's files it says are affected.
func (f *corruptFixture) checkJSON(args ...string) (int, string, map[string]bool) {
	f.t.Helper()
	r := f.runAs(args, "check", "--read-data", "--json")
	s := summary(f.t, r.stdout)
	var problems []string
	for _, p := range s["problems"].([]any) {
		problems = append(problems, p.(string))
	}
	affected := map[string]bool{}
	if list, ok := s["affected"].([]any); ok {
		for _, a := range list {
			entry := a.(string)
			if !strings.HasPrefix(entry, f.second[:8]+":") {
				continue
			}
			p := strings.TrimPrefix(entry, f.second[:8]+":")
			p, _, _ = strings.Cut(p, " (")
			rel, err := filepath.Rel(f.src, p)
			if err == nil {
				affected[rel] = true
			}
		}
	}
	return r.code, strings.Join(problems, "\n"), affected
}

// runAs runs cairn with the second password when extra[0] is "second", else with
// the fixture's own.
func (f *corruptFixture) runAs(extra []string, args ...string) result {
	f.t.Helper()
	if len(extra) > 0 && extra[0] == "second" {
		return f.runRaw(nil, append([]string{"--repo", f.repo, "--password-file", f.secondPassword, "--insecure-kdf"}, args...)...)
	}
	return f.run(args...)
}

// hit reports whether check's affected paths name the file rel or a folder above it.
func hit(affected map[string]bool, rel string) bool {
	for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
		if affected[p] {
			return true
		}
	}
	return false
}

// restoreAndCompare restores snapshot (all of src) into a new folder and compares
// every file of want that skip does not hit byte for byte; it returns the run.
func (f *corruptFixture) restoreAndCompare(snapshot string, want map[string][]byte, skip map[string]bool, as ...string) result {
	f.t.Helper()
	target, err := os.MkdirTemp(f.dir, "restore-")
	if err != nil {
		f.t.Fatal(err)
	}
	r := f.runAs(as, "restore", snapshot+":"+f.src, "--target", target)
	for name, b := range want {
		if hit(skip, name) {
			continue
		}
		got, err := os.ReadFile(filepath.Join(target, name))
		if err != nil || !bytes.Equal(got, b) {
			f.t.Errorf("restore of %s: unaffected file %s not restored intact (%v)\nexit %d\n%s", snapshot, name, err, r.code, r.stderr)
		}
	}
	return r
}

// firstWant is the content of the first snapshot.
func (f *corruptFixture) firstWant() map[string][]byte {
	out := map[string][]byte{}
	for k, v := range f.want {
		if k != "new.bin" {
			out[k] = v
		}
	}
	return out
}

func (f *corruptFixture) mustBeClean(as ...string) {
	f.t.Helper()
	r := f.runAs(as, "check", "--read-data")
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") {
		f.t.Fatalf("check after repair: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// A damaged pack: check names it and the files it hits; restore fails for those
// files by name and restores the others; repair packs keeps what is intact, and a
// backup of the same files stores the rest again, which makes the old snapshot whole.
func TestCorruptPack(t *testing.T) {
	for _, mode := range damageModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			pack := largest(t, f.firstPacks)
			mode.do(t, pack)

			code, problems, affected := f.checkJSON()
			if code != 1 || !strings.Contains(problems, "pack "+filepath.Base(pack)[:8]) || len(affected) == 0 {
				t.Fatalf("check: exit %d, affected %v\n%s", code, affected, problems)
			}
			r := f.restoreAndCompare("latest", f.want, affected)
			if r.code == 0 {
				t.Fatalf("restore of damaged files succeeded:\n%s", r.stderr)
			}
			named := 0
			for name := range f.want {
				if strings.Contains(r.stderr, name) {
					if !hit(affected, name) {
						t.Errorf("restore failed on %s, which check says is intact:\n%s", name, r.stderr)
					}
					named++
				}
			}
			if named == 0 {
				t.Errorf("restore's errors name no file:\n%s", r.stderr)
			}

			s := summary(t, f.must("repair", "packs", "--json"))
			if len(s["removed"].([]any)) != 1 || len(s["blobs_lost"].([]any)) == 0 {
				t.Fatalf("repair packs: %v", s)
			}
			if s := summary(t, f.must("repair", "packs", "--json")); len(s["damaged"].([]any)) != 0 {
				t.Fatalf("a second repair packs finds damage: %v", s)
			}
			f.must("backup", f.src)
			f.mustBeClean()
			for _, snap := range []string{f.first[:8], f.second[:8]} {
				want := f.want
				if snap == f.first[:8] {
					want = f.firstWant()
				}
				if r := f.restoreAndCompare(snap, want, nil); r.code != 0 {
					t.Fatalf("restore of %s after repair: exit %d\n%s", snap, r.code, r.stderr)
				}
			}
		})
	}
}

// A lost pack whose files no longer exist: repair index forgets the pack, repair
// snapshots keeps the rest of both snapshots (marked) and removes the originals, and
// check is clean; prune then frees what only the originals used.
func TestCorruptPackDataGone(t *testing.T) {
	f := newCorruptFixture(t)
	pack := largest(t, f.firstPacks)
	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	_, _, affected := f.checkJSON()
	if err := os.RemoveAll(f.src); err != nil {
		t.Fatal(err)
	}
	f.must("repair", "index")
	dry := summary(t, f.must("repair", "snapshots", "--dry-run", "--json"))
	if dry["repaired"].(float64) != 2 || len(repoFiles(t, f.repo, "snapshots")) != 2 {
		t.Fatalf("dry run: %v", dry)
	}
	out := f.must("repair", "snapshots", "--forget", "--json")
	lines := jsonLines(t, out)
	s := lines[len(lines)-1]
	if s["repaired"].(float64) != 2 || s["removed"].(float64) != 2 {
		t.Fatalf("repair snapshots: %v", s)
	}
	var damaged []string
	for _, l := range lines[:len(lines)-1] {
		for _, d := range l["damaged"].([]any) {
			damaged = append(damaged, d.(map[string]any)["path"].(string))
		}
	}
	for name := range affected {
		if !strings.Contains(strings.Join(damaged, "\n"), filepath.Join(f.src, name)) {
			t.Errorf("%s is not listed as damaged: %v", name, damaged)
		}
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(f.must("snapshots", "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	for _, sn := range list {
		if tags, _ := sn["tags"].([]any); len(tags) != 1 || tags[0] != "repaired" {
			t.Errorf("a repaired snapshot is not tagged: %v", sn)
		}
	}
	f.mustBeClean()
	f.must("prune")
	f.mustBeClean()
	target := filepath.Join(f.dir, "restored")
	f.must("restore", "latest:"+f.src, "--target", target)
	for name, b := range f.want {
		got, err := os.ReadFile(filepath.Join(target, name))
		switch {
		case err != nil:
			t.Errorf("%s is not restored: %v", name, err)
		case hit(affected, name) && len(got) >= len(b):
			t.Errorf("%s: %d bytes restored of %d, but some were lost", name, len(got), len(b))
		case !hit(affected, name) && !bytes.Equal(got, b):
			t.Errorf("%s changed", name)
		}
	}
}

// A damaged or lost index file: check says so, restore fails for the files whose
// data it listed and restores the others, and repair index makes everything whole.
func TestCorruptIndex(t *testing.T) {
	for _, mode := range damageModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			mode.do(t, f.firstIndex)

			code, problems, affected := f.checkJSON()
			want := "index " + filepath.Base(f.firstIndex)[:8]
			if mode.name == "delete" {
				want = "not in the index" // nothing names a file that is gone: its blobs are missed
			}
			if code != 1 || !strings.Contains(problems, want) {
				t.Fatalf("check: exit %d, want %q in\n%s", code, want, problems)
			}
			if hit(affected, "new.bin") || len(affected) == 0 {
				t.Fatalf("check says affected: %v", affected)
			}
			r := f.restoreAndCompare("latest", f.want, affected)
			if r.code == 0 || !strings.Contains(r.stderr, "big.bin") {
				t.Fatalf("restore with a damaged index: exit %d\n%s", r.code, r.stderr)
			}
			f.must("repair", "index")
			f.mustBeClean()
			for snap, want := range map[string]map[string][]byte{f.first[:8]: f.firstWant(), f.second[:8]: f.want} {
				if r := f.restoreAndCompare(snap, want, nil); r.code != 0 {
					t.Fatalf("restore of %s after repair: exit %d\n%s", snap, r.code, r.stderr)
				}
			}
		})
	}
}

// A damaged snapshot file: check names it, a restore of it fails naming it, the
// other snapshot lists and restores, and repair snapshots --forget removes what
// cannot be read. A deleted snapshot file cannot be noticed: a repository keeps no
// list of its snapshots, so it looks like a forgotten one, and the rest is intact.
func TestCorruptSnapshot(t *testing.T) {
	for _, mode := range damageModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			mode.do(t, f.firstSnapshot)
			short := f.first[:8]

			code, problems, _ := f.checkJSON()
			if mode.name == "delete" {
				if code != 0 {
					t.Fatalf("check after deleting a snapshot file: exit %d\n%s", code, problems)
				}
			} else if code != 1 || !strings.Contains(problems, "snapshot "+short) {
				t.Fatalf("check: exit %d\n%s", code, problems)
			}
			r := f.run("restore", short+":"+f.src, "--target", filepath.Join(f.dir, "first"))
			if r.code != 1 || !strings.Contains(r.stderr, short) {
				t.Fatalf("restore of the damaged snapshot: exit %d\n%s", r.code, r.stderr)
			}
			r = f.run("snapshots")
			if r.code != 0 || !strings.Contains(r.stdout, f.second[:8]) || strings.Contains(r.stdout, short) {
				t.Fatalf("snapshots: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if mode.name != "delete" && !strings.Contains(r.stderr, "snapshot "+short) {
				t.Errorf("snapshots does not warn of the damaged one:\n%s", r.stderr)
			}
			if r := f.restoreAndCompare("latest", f.want, nil); r.code != 0 {
				t.Fatalf("restore of the intact snapshot: exit %d\n%s", r.code, r.stderr)
			}
			if mode.name == "delete" {
				return
			}
			if r := f.run("repair", "snapshots"); r.code != 1 || !strings.Contains(r.stderr, "cannot be repaired") {
				t.Fatalf("repair snapshots without --forget: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			s := summary(t, f.must("repair", "snapshots", "--forget", "--json"))
			if s["unrepairable"].(float64) != 1 || s["removed"].(float64) != 1 || s["intact"].(float64) != 1 {
				t.Fatalf("repair snapshots --forget: %v", s)
			}
			f.must("prune")
			f.mustBeClean()
			if r := f.restoreAndCompare("latest", f.want, nil); r.code != 0 {
				t.Fatalf("restore after repair: exit %d\n%s", r.code, r.stderr)
			}
		})
	}
}

// withSecondKey adds a second password to the repository.
func (f *corruptFixture) withSecondKey() {
	f.t.Helper()
	f.secondPassword = filepath.Join(f.dir, "second")
	writeFile(f.t, f.secondPassword, []byte("another password"))
	f.must("key", "add", "--new-password-file", f.secondPassword)
}

// currentKey returns the path of the key file the fixture's password opens.
func (f *corruptFixture) currentKey() string {
	f.t.Helper()
	var keys []map[string]any
	if err := json.Unmarshal([]byte(f.must("key", "list", "--json")), &keys); err != nil {
		f.t.Fatal(err)
	}
	for _, k := range keys {
		if k["current"] == true {
			return filepath.Join(f.repo, "keys", k["id"].(string))
		}
	}
	f.t.Fatal("no current key")
	return ""
}

// flipInData flips a byte of a key file's sealed master key, where no password can
// open it any more.
func flipInData(t *testing.T, p string) {
	rewriteFile(t, p, func(b []byte) []byte {
		i := bytes.Index(b, []byte(`"data": "`))
		if i < 0 {
			t.Fatalf("no data field in %s", b)
		}
		b[i+20] ^= 0x01
		return b
	})
}

// A damaged key of two: its password says the repository cannot be opened and why;
// with the other password check names the key, everything restores, and removing
// the key and adding the password again brings check back to clean.
func TestCorruptKey(t *testing.T) {
	modes := append([]struct {
		name string
		do   func(t *testing.T, path string)
	}{{"flip-data", flipInData}}, damageModes...)
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			f.withSecondKey()
			key := f.currentKey()
			short := filepath.Base(key)[:8]
			mode.do(t, key)

			r := f.run("snapshots")
			switch mode.name {
			case "delete":
				// A deleted key is a removed password: nothing tells it from a wrong one.
				if r.code != 1 || !strings.Contains(r.stderr, "wrong password") {
					t.Fatalf("a deleted key's password: exit %d\n%s", r.code, r.stderr)
				}
			case "flip":
				// The middle of the file may be a field the key does not need
				// (such as its time); then the password still opens.
				if r.code != 0 && (!strings.Contains(r.stderr, "cannot be opened") || !strings.Contains(r.stderr, short)) {
					t.Fatalf("a damaged key's password: exit %d\n%s", r.code, r.stderr)
				}
			default:
				if r.code != 1 || !strings.Contains(r.stderr, "cannot be opened") || !strings.Contains(r.stderr, short) || !strings.Contains(r.stderr, "damaged") {
					t.Fatalf("a damaged key's password: exit %d\n%s", r.code, r.stderr)
				}
			}
			code, problems, _ := f.checkJSON("second")
			if mode.name == "delete" {
				if code != 0 {
					t.Fatalf("check after deleting a key: exit %d\n%s", code, problems)
				}
			} else if code != 1 || !strings.Contains(problems, "key "+short) {
				t.Fatalf("check with the other password: exit %d\n%s", code, problems)
			}
			if r := f.restoreAndCompare("latest", f.want, nil, "second"); r.code != 0 {
				t.Fatalf("restore with the other password: exit %d\n%s", r.code, r.stderr)
			}
			if mode.name != "delete" {
				if r := f.runAs([]string{"second"}, "key", "remove", short); r.code != 0 {
					t.Fatalf("key remove: exit %d\n%s", r.code, r.stderr)
				}
			}
			if r := f.runAs([]string{"second"}, "key", "add", "--new-password-file", f.password); r.code != 0 {
				t.Fatalf("key add: exit %d\n%s", r.code, r.stderr)
			}
			f.mustBeClean()
			f.mustBeClean("second")
		})
	}
}

// The only key or the config damaged or lost: every command says the repository
// cannot be opened, and why; nothing can repair that, and init does not make a new
// repository over the old one's files.
func TestCorruptOnlyKeyOrConfig(t *testing.T) {
	keyModes := append([]struct {
		name string
		do   func(t *testing.T, path string)
	}{{"flip-data", flipInData}}, damageModes[1:]...)
	for _, mode := range keyModes {
		t.Run("key-"+mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			mode.do(t, f.currentKey())
			want := "damaged"
			if mode.name == "delete" {
				want = "no key files"
			}
			for _, args := range [][]string{{"snapshots"}, {"check"}, {"restore", "latest", "--target", filepath.Join(f.dir, "t")}} {
				r := f.run(args...)
				if r.code != 1 || !strings.Contains(r.stderr, "cannot be opened") || !strings.Contains(r.stderr, want) {
					t.Fatalf("%v with the only key %s: exit %d\n%s", args, mode.name, r.code, r.stderr)
				}
			}
		})
	}
	for _, mode := range damageModes {
		t.Run("config-"+mode.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			mode.do(t, filepath.Join(f.repo, "config"))
			want := "config file is damaged"
			if mode.name == "delete" {
				want = "config file is missing"
			}
			for _, args := range [][]string{{"snapshots"}, {"check"}, {"backup", f.src}} {
				r := f.run(args...)
				if r.code != 1 || !strings.Contains(r.stderr, "cannot be opened") || !strings.Contains(r.stderr, want) {
					t.Fatalf("%v with the config %s: exit %d\n%s", args, mode.name, r.code, r.stderr)
				}
			}
			if mode.name == "delete" {
				if r := f.run("init"); r.code == 0 {
					t.Fatal("init made a new repository over one that lost its config")
				}
			}
		})
	}
}
