//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startBackup starts cairn backup of src and returns the running command, its
// output buffers and a channel that gets its exit code.
func (e *env) startBackup(src string) (*bytes.Buffer, *bytes.Buffer, <-chan int) {
	e.t.Helper()
	cmd := exec.Command(binary, "--repo", e.repo, "--password-file", e.password, "--json", "backup", src)
	cmd.Env = e.vars
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		done <- code
	}()
	return &out, &errb, done
}

// locks returns the names of the repository's lock files.
func locks(t *testing.T, repo string) map[string]bool {
	entries, err := os.ReadDir(filepath.Join(repo, "locks"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// Four backups of different trees that share some data run at once into one
// repository; a prune started while they run refuses on their locks and deletes
// nothing; afterwards prune, check --read-data and a restore of every snapshot
// find everything whole. A second round does the same after a forget, so that the
// prune that follows really deletes and repacks.
func TestConcurrentBackupsAndPrune(t *testing.T) {
	e := newEnv(t)
	shared := randomData(t, 2<<20)
	trees := make([]string, 4)
	for i := range trees {
		trees[i] = filepath.Join(e.dir, fmt.Sprintf("tree%d", i))
		writeFile(t, filepath.Join(trees[i], "shared.bin"), shared)
		for j := 0; j < 3; j++ {
			writeFile(t, filepath.Join(trees[i], fmt.Sprintf("d%d/own%d.bin", j, j)), randomData(t, 3<<20))
		}
		writeFile(t, filepath.Join(trees[i], "note.txt"), []byte(fmt.Sprintf("tree %d\n", i)))
	}
	// Two trees share a file besides shared.bin.
	pair := randomData(t, 1<<20)
	writeFile(t, filepath.Join(trees[0], "pair.bin"), pair)
	writeFile(t, filepath.Join(trees[1], "pair.bin"), pair)
	e.must("init")

	for round := 1; round <= 2; round++ {
		if round == 2 {
			for i, tr := range trees {
				os.RemoveAll(filepath.Join(tr, "d0"))
				writeFile(t, filepath.Join(tr, fmt.Sprintf("round2-%d.bin", i)), randomData(t, 2<<20))
			}
		}
		want := make([]map[string]string, len(trees))
		for i, tr := range trees {
			want[i] = contentTree(t, tr)
		}
		type run struct {
			out, errb *bytes.Buffer
			done      <-chan int
			code      int
			finished  bool
		}
		runs := make([]*run, len(trees))
		for i, tr := range trees {
			out, errb, done := e.startBackup(tr)
			runs[i] = &run{out: out, errb: errb, done: done}
		}
		running := func() int {
			n := 0
			for _, r := range runs {
				if !r.finished {
					select {
					case r.code = <-r.done:
						r.finished = true
					default:
						n++
					}
				}
			}
			return n
		}
		// Once every backup holds its lock, prune is tried again and again until
		// they are done: it must refuse while one holds its lock. A lock file there
		// both before and after a prune was held all through it (a lock keeps its
		// name until it is refreshed, every 5 minutes).
		// Each running backup holds one lock once it has taken it, and a finished
		// one none: wait until every one still running holds its lock, so that no
		// prune runs before a backup has locked (the backup would then refuse).
		deadline := time.Now().Add(30 * time.Second)
		for len(locks(t, e.repo)) != running() {
			if time.Now().After(deadline) {
				t.Fatal("the backups never held their locks")
			}
			time.Sleep(time.Millisecond)
		}
		refused := 0
		for running() > 0 {
			before := locks(t, e.repo)
			r := e.run("prune")
			held := 0
			for name := range locks(t, e.repo) {
				if before[name] {
					held++
				}
			}
			switch {
			case r.code == 1 && strings.Contains(r.stderr, "locked"):
				refused++
			case r.code == 0 && held == 0:
			default:
				t.Fatalf("round %d: prune while %d backups held their locks: exit %d\n%s", round, held, r.code, r.stderr)
			}
		}
		if refused == 0 {
			t.Fatalf("round %d: no prune ran while the backups held their locks", round)
		}
		ids := make([]string, len(trees))
		for i, r := range runs {
			if r.code != 0 {
				t.Fatalf("round %d: backup of %s: exit %d\n%s", round, trees[i], r.code, r.errb)
			}
			ids[i] = summary(t, r.out.String())["snapshot_id"].(string)
		}
		t.Logf("round %d: prune refused %d times while 4 backups ran", round, refused)

		if round == 2 {
			s := summary(t, e.must("forget", "--keep-last", "1", "--json"))
			if s["removed"].(float64) != float64(len(trees)) {
				t.Fatalf("forget: %v", s)
			}
		}
		s := summary(t, e.must("prune", "--json", "--max-unused", "0%"))
		if round == 2 && s["packs_deleted"].(float64)+s["packs_repacked"].(float64) == 0 {
			t.Errorf("round 2: prune deleted nothing after forget: %v", s)
		}
		if out := e.must("check", "--read-data"); !strings.Contains(out, "no problems found") {
			t.Fatalf("round %d: check:\n%s", round, out)
		}
		for i, id := range ids {
			target := filepath.Join(e.dir, fmt.Sprintf("restore-%d-%d", round, i))
			e.must("restore", id[:8]+":"+trees[i], "--target", target)
			sameContent(t, fmt.Sprintf("round %d tree %d", round, i), want[i], contentTree(t, target))
		}
	}
}
