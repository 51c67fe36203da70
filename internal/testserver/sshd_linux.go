package testserver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// killTree kills p and all its descendants. sshd's session processes are in
// sessions of their own, so no process group holds them all: p is stopped first
// (so it forks no more), then each generation of descendants is stopped, and
// finally all are killed.
func killTree(p *os.Process) {
	stopped := map[int]bool{p.Pid: true}
	_ = syscall.Kill(p.Pid, syscall.SIGSTOP) // errors: the process has exited already
	for {
		added := false
		for _, pid := range childrenOf(stopped) {
			if !stopped[pid] {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				stopped[pid] = true
				added = true
			}
		}
		if !added {
			break
		}
	}
	for pid := range stopped {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// childrenOf returns the processes whose parent is in parents.
func childrenOf(parents map[int]bool) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil || !parents[ppid] {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
