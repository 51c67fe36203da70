package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultRepositoryNeedsNoSetup(t *testing.T) {
	e := newEnv(t)
	docs := filepath.Join(e.dir, "home", "Documents")
	writeFile(t, filepath.Join(docs, "letter.txt"), []byte("dear reader"))

	r := e.runRaw(nil, "backup", docs)
	if r.code != 0 {
		t.Fatalf("first backup into the default repository: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	keyFile := filepath.Join(e.dir, "home", ".local", "share", "cairn.key")
	if !strings.Contains(r.stderr, keyFile) || !strings.Contains(r.stderr, "safe") {
		t.Fatalf("the first run must say where the key is and to keep it safe; stderr:\n%s", r.stderr)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v mode %v", keyFile, err, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(e.dir, "home", ".local", "share", "cairn", "config")); err != nil {
		t.Fatalf("default repository not created: %v", err)
	}

	r = e.runRaw(nil, "backup", docs)
	if r.code != 0 || strings.Contains(r.stderr, keyFile) {
		t.Fatalf("second backup: exit %d, and the key notice must be said only once:\n%s", r.code, r.stderr)
	}
	out := e.runRaw(nil, "cat", "latest", filepath.Join(docs, "letter.txt"))
	if out.code != 0 || out.stdout != "dear reader" {
		t.Fatalf("cat from the default repository: exit %d %q %s", out.code, out.stdout, out.stderr)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))

	r := e.run("snapshots")
	if r.code != 1 || !strings.Contains(r.stderr, "no repository at") {
		t.Fatalf("no repository: exit %d, stderr %q", r.code, r.stderr)
	}
	e.must("init")
	r = e.run("init")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("init twice: exit %d, stderr %q", r.code, r.stderr)
	}
	wrong := filepath.Join(e.dir, "wrong")
	writeFile(t, wrong, []byte("not it"))
	r = e.runRaw(nil, "--repo", e.repo, "--password-file", wrong, "snapshots")
	if r.code != 1 || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run("backup", filepath.Join(e.dir, "does-not-exist"))
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("missing source: exit %d, stderr %q", r.code, r.stderr)
	}
	if ids, _ := os.ReadDir(filepath.Join(e.repo, "snapshots")); len(ids) != 0 {
		t.Fatalf("a failed backup left %d snapshots", len(ids))
	}
	for _, args := range [][]string{{"backup"}, {"frobnicate"}, {"ls"}, {"backup", "--no-such-flag", src}, {"restore", "latest"}} {
		if r := e.run(args...); r.code != 2 {
			t.Errorf("cairn %v: exit %d, want 2 (usage); stderr %q", args, r.code, r.stderr)
		}
	}
	e.must("backup", src)
	for _, args := range [][]string{{"cat", "latest", "/nope"}, {"ls", "zzzz"}, {"cat", "ffffffff", "/a"}} {
		if r := e.run(args...); r.code != 1 || r.stderr == "" {
			t.Errorf("cairn %v: exit %d, want 1 with a message; stderr %q", args, r.code, r.stderr)
		}
	}
	e.must("check", "--read-data")
}

func TestIncrementalBackupReadsOnlyChanges(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	for i := 0; i < 20; i++ {
		writeFile(t, filepath.Join(src, "dir", string(rune('a'+i))), randomData(t, 300<<10))
	}
	e.must("init")
	s1 := summary(t, e.must("backup", "--json", src))
	if s1["files_new"].(float64) != 20 || s1["data_added"].(float64) < 20*300<<10 {
		t.Fatalf("first backup summary: %v", s1)
	}
	s2 := summary(t, e.must("backup", "--json", src))
	if s2["files_unmodified"].(float64) != 20 || s2["files_new"].(float64) != 0 || s2["data_added"].(float64) > 64<<10 {
		t.Fatalf("unchanged backup must read nothing and add almost nothing: %v", s2)
	}
	if s2["parent"] != s1["snapshot_id"] {
		t.Fatalf("second snapshot's parent %v, want %v", s2["parent"], s1["snapshot_id"])
	}
	writeFile(t, filepath.Join(src, "dir", "c"), randomData(t, 300<<10))
	s3 := summary(t, e.must("backup", "--json", src))
	if s3["files_changed"].(float64) != 1 || s3["files_unmodified"].(float64) != 19 {
		t.Fatalf("after changing one file: %v", s3)
	}
	if added := s3["data_added"].(float64); added < 300<<10 || added > 400<<10 {
		t.Fatalf("changing one 300 KiB file added %v bytes", added)
	}
	s4 := summary(t, e.must("backup", "--json", "--force", src))
	if s4["files_unmodified"].(float64) != 0 || s4["data_added"].(float64) > 64<<10 {
		t.Fatalf("--force must read every file again and still dedup: %v", s4)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.must("snapshots", "--json")), &list); err != nil || len(list) != 4 {
		t.Fatalf("snapshots --json: want an array of 4 snapshots: %v %v", err, list)
	}
	if list[3]["kind"] != "file" || list[3]["paths"].([]any)[0] != src || list[3]["size"].(float64) != 20*300<<10 {
		t.Fatalf("snapshots --json entry: %v", list[3])
	}
}

func TestListCatDiffAndJSON(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("keep"))
	writeFile(t, filepath.Join(src, "change.txt"), []byte("before"))
	writeFile(t, filepath.Join(src, "gone.txt"), []byte("gone"))
	big := randomData(t, 5<<20)
	writeFile(t, filepath.Join(src, "sub", "big.bin"), big)
	e.must("init")
	s1 := summary(t, e.must("backup", "--json", "--tag", "first", src))["snapshot_id"].(string)

	if err := os.Remove(filepath.Join(src, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "change.txt"), []byte("after!"))
	writeFile(t, filepath.Join(src, "new.txt"), []byte("new"))
	if err := os.Chmod(filepath.Join(src, "keep.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := summary(t, e.must("backup", "--json", src))["snapshot_id"].(string)

	ls := e.must("ls", s1[:8], src)
	for _, want := range []string{src + "/keep.txt", src + "/gone.txt", src + "/sub/big.bin"} {
		if !strings.Contains(ls, want+"\n") {
			t.Errorf("ls of the first snapshot lacks %s:\n%s", want, ls)
		}
	}
	long := e.must("ls", "-l", "latest", src+"/keep.txt")
	if !strings.HasPrefix(long, "-rw-------") {
		t.Errorf("ls -l shows %q", long)
	}
	nodes := jsonLines(t, e.must("ls", "--json", "latest", src+"/sub"))
	if len(nodes) != 2 || nodes[0]["type"] != "dir" || nodes[1]["path"] != src+"/sub/big.bin" || nodes[1]["size"].(float64) != float64(len(big)) {
		t.Errorf("ls --json: %v", nodes)
	}
	if got := e.must("cat", s1, src+"/sub/big.bin"); got != string(big) {
		t.Errorf("cat of a 5 MiB file returned %d bytes that differ", len(got))
	}
	if got := e.must("dump", "latest", src+"/change.txt"); got != "after!" {
		t.Errorf("dump: %q", got)
	}
	if got := e.must("cat", "--tag", "first", "latest", src+"/change.txt"); got != "before" {
		t.Errorf("latest with --tag first: %q", got)
	}

	diff := e.must("diff", s1, s2)
	for _, want := range []string{"-    " + src + "/gone.txt", "+    " + src + "/new.txt", "M    " + src + "/change.txt", "U    " + src + "/keep.txt"} {
		if !strings.Contains(diff, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, "big.bin") {
		t.Errorf("diff lists an unchanged file:\n%s", diff)
	}
	d := summary(t, e.must("diff", "--json", s1, s2))
	if d["added"].(float64) != 1 || d["removed"].(float64) != 1 || d["modified"].(float64) != 1 {
		t.Errorf("diff summary: %v", d)
	}
}

func TestRestoreIncludeExcludeAndVerify(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "docs", "a.txt"), []byte("a"))
	writeFile(t, filepath.Join(src, "docs", "b.log"), []byte("b"))
	writeFile(t, filepath.Join(src, "pics", "c.jpg"), []byte("c"))
	e.must("init")
	e.must("backup", src)

	target := filepath.Join(e.dir, "t1")
	e.must("restore", "latest:"+src, "--target", target, "--include", "*.txt", "--verify")
	if _, err := os.Stat(filepath.Join(target, "docs", "a.txt")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"docs/b.log", "pics/c.jpg"} {
		if _, err := os.Stat(filepath.Join(target, p)); err == nil {
			t.Errorf("--include *.txt restored %s", p)
		}
	}
	target2 := filepath.Join(e.dir, "t2")
	s := summary(t, e.must("restore", "--json", "latest:"+src, "--target", target2, "--exclude", "pics", "--verify"))
	if s["files_restored"].(float64) != 2 || s["files_verified"].(float64) != 2 {
		t.Errorf("restore summary: %v", s)
	}
	if _, err := os.Stat(filepath.Join(target2, "pics")); err == nil {
		t.Errorf("--exclude pics restored pics")
	}
	target3 := filepath.Join(e.dir, "t3")
	e.must("restore", "latest:"+src+"/docs/a.txt", "--target", target3)
	if b, err := os.ReadFile(filepath.Join(target3, "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("restore of one file: %q %v", b, err)
	}
}

// A restore never writes outside its target, not even through a symlink already
// in the target that stands where the snapshot has a folder.
func TestRestoreRefusesToWriteThroughSymlinks(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "etc", "passwd"), []byte("from the snapshot"))
	e.must("init")
	e.must("backup", src)

	outside := filepath.Join(e.dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(e.dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(target, "etc")); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "latest:"+src, "--target", target)
	if r.code == 0 || !strings.Contains(r.stderr, "symlink") {
		t.Fatalf("restore through a symlink: exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("restore wrote %d entries outside the target", len(entries))
	}
	// A file in the way that is a symlink is replaced, not followed.
	target2 := filepath.Join(e.dir, "target2")
	if err := os.MkdirAll(filepath.Join(target2, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	writeFile(t, victim, []byte("untouched"))
	if err := os.Symlink(victim, filepath.Join(target2, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	e.must("restore", "latest:"+src, "--target", target2)
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Fatalf("restore wrote through a symlink: victim now %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(target2, "etc", "passwd")); string(b) != "from the snapshot" {
		t.Fatalf("restored file: %q", b)
	}
}

// Files the backup cannot read are listed, the snapshot is saved without them, and
// the exit status is 3.
func TestUnreadableFilesExitThree(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run cairn as another user")
	}
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "ok.txt"), []byte("readable"))
	writeFile(t, filepath.Join(src, "secret.txt"), []byte("hidden"))
	if err := os.Chmod(filepath.Join(src, "secret.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "locked"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.must("init")
	// Let the unprivileged user reach the test folders, the repository and the password.
	for _, p := range []string{filepath.Dir(e.dir), e.dir, src, e.password} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", e.repo, e.password).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary,
		"--repo", e.repo, "--password-file", e.password, "backup", "--json", src)
	cmd.Env = append(e.vars, "HOME=/nonexistent")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("backup with unreadable files: %v, want exit 3\n%s\n%s", err, out.String(), errb.String())
	}
	for _, p := range []string{"secret.txt", "locked"} {
		if !strings.Contains(errb.String(), filepath.Join(src, p)) {
			t.Errorf("the error output does not list %s:\n%s", p, errb.String())
		}
	}
	s := summary(t, out.String())
	if len(s["errors"].([]any)) != 2 {
		t.Errorf("summary errors: %v", s["errors"])
	}
	if got := e.must("cat", "latest", filepath.Join(src, "ok.txt")); got != "readable" {
		t.Errorf("the snapshot saved with errors lacks the readable file: %q", got)
	}
	e.must("check")
}
