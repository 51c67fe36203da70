//go:build linux

package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// killAfter starts cairn with args and kills it with SIGKILL after d (if still
// running); it reports whether the run was cut short.
func (e *env) killAfter(d time.Duration, args ...string) bool {
	e.t.Helper()
	full := append([]string{"--repo", e.repo, "--password-file", e.password}, args...)
	cmd := exec.Command(binary, full...)
	cmd.Env = e.vars
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// A backup, forget or prune killed at any moment leaves a repository that checks
// clean, whose earlier snapshots restore, and that takes the next backup.
func TestKilledAtAnyPointLosesNothing(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	for i := 0; i < 24; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/f%d", i%4, i)), randomData(t, 1<<20))
	}
	e.must("init")
	e.must("backup", src)
	want := e.must("cat", "latest", filepath.Join(src, "d1/f5"))
	killed := 0
	for i, d := range []time.Duration{5, 10, 20, 40, 60, 90, 130, 200, 300, 450} {
		delay := d * time.Millisecond
		writeFile(t, filepath.Join(src, fmt.Sprintf("new/%d", i)), randomData(t, 2<<20))
		if e.killAfter(delay, "backup", src) {
			killed++
		}
		if e.killAfter(delay/2, "forget", "--keep-last", "3", "--prune") {
			killed++
		}
		if e.killAfter(delay/3, "prune", "--max-unused", "0%") {
			killed++
		}
		r := e.run("check", "--read-data")
		if r.code != 0 {
			t.Fatalf("after kills at %v: check failed:\n%s\n%s", delay, r.stdout, r.stderr)
		}
		if got := e.must("cat", "latest", filepath.Join(src, "d1/f5")); got != want {
			t.Fatalf("after kills at %v: a file of the snapshot changed", delay)
		}
	}
	if killed == 0 {
		t.Fatal("no run was killed: the delays are too long to test anything")
	}
	t.Logf("%d runs killed", killed)
	e.must("backup", src)
	e.must("prune")
	e.must("check", "--read-data")
	target := filepath.Join(e.dir, "restore")
	e.must("restore", "latest:"+src, "--target", target, "--verify")
}
