//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"cairn/internal/testserver"
	"cairn/internal/treetest"
)

// remote is a repository location on a real server, and the environment cairn
// needs to reach it.
type remote struct {
	name string
	repo string
	vars []string
	// packs counts the pack files stored so far.
	packs func() int
	// locks returns the names of the lock files there now.
	locks func() map[string]bool
}

// sftpRemote returns a repository location on a real sshd, reached through the
// Host alias of its home folder's ~/.ssh/config, as a user would.
func sftpRemote(t *testing.T, srv *testserver.SSHServer) remote {
	dir := filepath.Join(srv.Dir, "repo")
	return remote{
		name: "sftp",
		repo: srv.Location(dir),
		vars: []string{"HOME=" + srv.HomeDir, "SSH_AUTH_SOCK="},
		packs: func() int {
			n := 0
			_ = filepath.Walk(filepath.Join(dir, "data"), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					n++
				}
				return nil
			})
			return n
		},
	}
}

// s3Remote returns a repository location in a new bucket of a real S3 server.
func s3Remote(t *testing.T, srv *testserver.S3Server) remote {
	bucket := srv.NewBucket(t)
	client := srv.Client(t)
	return remote{
		name: "s3",
		repo: srv.Location(bucket, "cairn"),
		vars: []string{"AWS_ACCESS_KEY_ID=" + srv.Access, "AWS_SECRET_ACCESS_KEY=" + srv.Secret},
		packs: func() int {
			n := 0
			for obj := range client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "cairn/data/", Recursive: true}) {
				if obj.Err == nil {
					n++
				}
			}
			return n
		},
		locks: func() map[string]bool {
			names := map[string]bool{}
			for obj := range client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "cairn/locks/", Recursive: true}) {
				if obj.Err == nil {
					names[obj.Key] = true
				}
			}
			return names
		},
	}
}

// remoteEnv is an env whose repository is on r, with its own cache folder.
func remoteEnv(t *testing.T, r remote) *env {
	e := newEnv(t)
	e.repo = r.repo
	e.vars = append(e.vars, "XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"))
	e.vars = append(e.vars, r.vars...)
	return e
}

// smallExt4 makes an ext4 filesystem image of size bytes holding a copy of tree.
func smallExt4(t *testing.T, path, tree string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
}

// Every command works the same on an sftp and an s3 repository: init, backup,
// an unchanged backup, restore of files and of a filesystem image, check
// --read-data, forget with prune; and the local cache serves the metadata.
func TestRemoteRepositories(t *testing.T) {
	backends := map[string]func(t *testing.T) remote{
		"sftp": func(t *testing.T) remote { return sftpRemote(t, testserver.SSHD(t)) },
		"s3":   func(t *testing.T) remote { return s3Remote(t, testserver.S3(t)) },
	}
	for _, name := range []string{"sftp", "s3"} {
		t.Run(name, func(t *testing.T) {
			r := backends[name](t)
			e := remoteEnv(t, r)
			src := filepath.Join(e.dir, "src")
			treetest.MakeEdgeCases(t, src, treetest.EdgeOptions{Seed: 7})
			writeFile(t, filepath.Join(src, "big"), randomData(t, 20<<20))

			e.must("init")
			first := summary(t, e.must("--json", "backup", src))
			if r.packs() == 0 {
				t.Fatalf("no pack files on the %s server after a backup", name)
			}
			second := summary(t, e.must("--json", "backup", src))
			if second["data_added"] != float64(0) {
				t.Errorf("unchanged backup added %v bytes (first added %v)", second["data_added"], first["data_added"])
			}
			cache := filepath.Join(e.dir, "cache", "cairn")
			if n := countFiles(t, cache); n == 0 {
				t.Errorf("the local cache %s is empty after two backups", cache)
			}

			target := filepath.Join(e.dir, "restored")
			e.must("restore", "latest", "--target", target)
			treetest.RequireEqual(t, src, filepath.Join(target, src), treetest.CompareOptions{IgnoreATime: true})

			// A filesystem image, restored byte for byte.
			img := filepath.Join(e.dir, "fs.img")
			smallExt4(t, img, filepath.Join(src, "many"), 48<<20)
			e.must("image", "create", img)
			out := filepath.Join(e.dir, "restored.img")
			e.must("image", "restore", "latest", out)
			if n := usedBytesDiffer(t, img, out, 0, 48<<20); n != 0 {
				t.Errorf("%d used extents of the restored filesystem differ", n)
			}
			if o, err := exec.Command("e2fsck", "-fn", out).CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn of the restored image: %v\n%s", err, o)
			}

			e.must("check", "--read-data")
			e.must("forget", "--keep-last", "1", "--prune")
			// One snapshot kept for each group: the files and the image.
			snaps := snapshotList(t, e.must("--json", "snapshots"))
			if len(snaps) != 2 {
				t.Errorf("after forget --keep-last 1: %d snapshots, want 2", len(snaps))
			}
			e.must("check", "--read-data")
			// The same listing with no cache at all.
			if got := snapshotList(t, e.must("--json", "--no-cache", "snapshots")); len(got) != len(snaps) {
				t.Errorf("--no-cache lists %d snapshots, the cached run %d", len(got), len(snaps))
			}
		})
	}
}

// snapshotList parses the output of snapshots --json.
func snapshotList(t *testing.T, out string) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	return list
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// Eight machines back up into one S3 repository at once, sharing some data; they
// dedup against each other, prune then runs, and check --read-data is clean and
// every snapshot restores.
func TestS3ManyClientsThenPrune(t *testing.T) {
	srv := testserver.S3(t)
	r := s3Remote(t, srv)
	setup := remoteEnv(t, r)
	setup.must("init")
	shared := randomData(t, 8<<20)

	const clients = 8
	envs := make([]*env, clients)
	srcs := make([]string, clients)
	for i := range envs {
		envs[i] = remoteEnv(t, r)
		envs[i].password = setup.password
		srcs[i] = filepath.Join(envs[i].dir, fmt.Sprintf("host%d", i))
		writeFile(t, filepath.Join(srcs[i], "shared.bin"), shared)
		writeFile(t, filepath.Join(srcs[i], "own.bin"), randomData(t, 2<<20))
		writeFile(t, filepath.Join(srcs[i], "doc.txt"), []byte(strings.Repeat(fmt.Sprintf("host %d\n", i), 1000)))
	}
	var wg sync.WaitGroup
	var running atomic.Int32
	running.Store(clients)
	results := make([]result, clients)
	for i := range envs {
		wg.Go(func() {
			defer running.Add(-1)
			results[i] = envs[i].run("--json", "backup", "--host", fmt.Sprintf("host%d", i), srcs[i])
		})
	}
	// A prune while the backups run must refuse on their locks. It is tried only
	// when every backup still running holds its lock (one that had not locked
	// yet would rightly be refused by prune's lock); a lock there both before and
	// after a prune was held all through it.
	refused := 0
	for running.Load() > 0 {
		before := r.locks()
		if len(before) == 0 || len(before) != int(running.Load()) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		res := setup.run("prune")
		held := false
		for name := range r.locks() {
			held = held || before[name]
		}
		switch {
		case res.code == 1 && strings.Contains(res.stderr, "locked"):
			refused++
		case held:
			t.Fatalf("prune while a backup held its lock: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		case res.code != 0:
			t.Fatalf("prune: exit %d\n%s", res.code, res.stderr)
		}
	}
	wg.Wait()
	if refused == 0 {
		t.Errorf("no prune was refused while %d backups ran", clients)
	}
	for i, res := range results {
		if res.code != 0 {
			t.Fatalf("client %d: exit %d\n%s", i, res.code, res.stderr)
		}
	}
	stats := summary(t, setup.must("--json", "stats"))
	total, _ := stats["total"].(map[string]any)
	stored, _ := total["stored_size"].(float64)
	if stored == 0 {
		t.Fatalf("stats has no stored_size: %v", stats)
	}
	// Each client's own 2 MiB plus the shared 8 MiB once (with some slack for
	// clients that stored the shared data at the same moment), not eight copies.
	if limit := float64(clients*2<<20 + 3*8<<20); stored > limit {
		t.Errorf("stored %.0f bytes, over %.0f: the clients did not dedup against each other", stored, limit)
	}
	setup.must("prune", "--max-unused", "0%")
	setup.must("check", "--read-data")
	for i := range envs {
		target := filepath.Join(envs[i].dir, "restored")
		envs[i].must("restore", "latest", "--host", fmt.Sprintf("host%d", i), "--target", target)
		treetest.RequireEqual(t, srcs[i], filepath.Join(target, srcs[i]), treetest.CompareOptions{IgnoreATime: true, IgnoreRootMeta: true})
	}
}

// The server dies in the middle of a backup. Back within the retry window, the
// backup carries on and succeeds; gone for good, the backup fails with a clear
// error, and once the server is back the repository checks clean, its earlier
// snapshot restores, and the next backup succeeds.
func TestRemoteServerKilledMidBackup(t *testing.T) {
	type server struct {
		remote        remote
		stop, restart func()
	}
	backends := map[string]func(t *testing.T) server{
		"sftp": func(t *testing.T) server {
			srv := testserver.SSHDPrivate(t)
			return server{sftpRemote(t, srv), func() { srv.Stop(t) }, func() { srv.Restart(t) }}
		},
		"s3": func(t *testing.T) server {
			srv := testserver.S3Private(t)
			return server{s3Remote(t, srv), func() { srv.Stop(t) }, func() { srv.Restart(t) }}
		},
	}
	for _, name := range []string{"sftp", "s3"} {
		t.Run(name, func(t *testing.T) {
			s := backends[name](t)
			e := remoteEnv(t, s.remote)
			src := filepath.Join(e.dir, "src")
			writeFile(t, filepath.Join(src, "first"), randomData(t, 4<<20))
			e.must("init")
			e.must("backup", src)
			for i := 0; i < 12; i++ {
				writeFile(t, filepath.Join(src, fmt.Sprintf("more/%d", i)), randomData(t, 8<<20))
			}

			// Back within the retry window: the backup goes on.
			before := s.remote.packs()
			res := e.runDuring(func() {
				waitFor(t, func() bool { return s.remote.packs() > before+1 })
				s.stop()
				time.Sleep(time.Second)
				s.restart()
			}, "backup", src)
			if res.code != 0 {
				t.Fatalf("backup with the server back after 1 s: exit %d\n%s", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, "retrying") {
				t.Errorf("no retry reported while the server was down:\n%s", res.stderr)
			}
			e.must("check", "--read-data")

			// Gone for good: a clear failure, and a usable repository after.
			for i := 0; i < 12; i++ {
				writeFile(t, filepath.Join(src, fmt.Sprintf("again/%d", i)), randomData(t, 8<<20))
			}
			before = s.remote.packs()
			res = e.runDuring(func() {
				waitFor(t, func() bool { return s.remote.packs() > before+1 })
				s.stop()
			}, "backup", src)
			if res.code != 1 {
				t.Fatalf("backup with the server gone: exit %d, want 1\n%s", res.code, res.stderr)
			}
			if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); !strings.Contains(lines[len(lines)-1], "connect") {
				t.Errorf("the last line does not state the error:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			}
			s.restart()
			e.must("check", "--read-data")
			target := filepath.Join(e.dir, "restored")
			e.must("restore", "latest", "--target", target)
			treetest.RequireEqual(t, filepath.Join(src, "more"), filepath.Join(target, src, "more"), treetest.CompareOptions{IgnoreATime: true})
			e.must("backup", src)
			e.must("check", "--read-data")
		})
	}
}

// runDuring runs cairn with args while during runs beside it.
func (e *env) runDuring(during func(), args ...string) result {
	e.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		during()
	}()
	res := e.run(args...)
	<-done
	return res
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, cond func() bool) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Error("gave up waiting")
}

// Wrong credentials, a missing bucket and an unknown or changed host key each
// give a clear one-line error and exit 1.
func TestRemoteErrors(t *testing.T) {
	srv := testserver.S3(t)
	r := s3Remote(t, srv)
	e := remoteEnv(t, r)
	e.must("init")

	check := func(what string, res result, want string) {
		t.Helper()
		if res.code != 1 || !strings.Contains(strings.ToLower(res.stderr), want) {
			t.Errorf("%s: exit %d, want 1 and an error saying %q:\n%s", what, res.code, want, res.stderr)
		}
		if strings.Count(strings.TrimSpace(res.stderr), "\n") > 2 {
			t.Errorf("%s: the error takes more than a few lines:\n%s", what, res.stderr)
		}
	}
	check("wrong secret", e.runRaw([]string{"AWS_SECRET_ACCESS_KEY=wrong"}, "--repo", e.repo, "--password-file", e.password, "snapshots"), "access denied")
	check("missing bucket", e.runRaw(nil, "--repo", srv.Location("no-such-bucket-cairn", ""), "--password-file", e.password, "snapshots"), "does not exist")

	ssh := testserver.SSHD(t)
	sr := sftpRemote(t, ssh)
	se := remoteEnv(t, sr)
	se.must("init")
	se.must("snapshots")
	known := ssh.KnownHostsFile
	orig, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check("unknown host key", se.run("snapshots"), "known_hosts")
	// The same host name with another key: a changed host key.
	other := strings.Fields(string(orig))
	other[len(other)-1] = "AAAAC3NzaC1lZDI1NTE5AAAAIFbu3a0Ac4uu7e9aQ3AdeM6w7Xkkhj3Q0t1ooY3mB5Ls"
	if err := os.WriteFile(known, []byte(strings.Join(other, " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("changed host key", se.run("snapshots"), "changed")
	if err := os.WriteFile(known, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	se.must("snapshots")
}
