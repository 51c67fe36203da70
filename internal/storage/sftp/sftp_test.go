package sftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"cairn/internal/storage"
	"cairn/internal/storage/local"
	"cairn/internal/storage/storagetest"
	"cairn/internal/testserver"
)

// testCtx bounds each connecting call of a test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// parse is ParseLocation that fails t on an error.
func parse(t testing.TB, spec string) Config {
	t.Helper()
	cfg, err := ParseLocation(spec)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// createAt creates a repository at location spec, closed when t ends.
func createAt(t testing.TB, spec string) *Storage {
	t.Helper()
	s, err := Create(testCtx(t), parse(t, spec))
	if err != nil {
		t.Fatalf("Create(%s): %v", spec, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	var n atomic.Int32
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return createAt(t, srv.Location(fmt.Sprintf("%s/repo%d", srv.Dir, n.Add(1))))
	})
}

// tempFiles returns the temporary files anywhere under root, a folder the server
// serves (the test server runs on this machine).
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// sampleFiles are one file of each type, a pack in a folder made on demand, and
// where the local provider keeps each.
var sampleFiles = map[storage.Handle]string{
	{Type: storage.ConfigFile}:               "config",
	{Type: storage.PackFile, Name: "ab12cd"}: "data/ab/ab12cd",
	{Type: storage.PackFile, Name: "Zq"}:     "data/Zq/Zq",
	{Type: storage.KeyFile, Name: "k1"}:      "keys/k1",
	{Type: storage.IndexFile, Name: "i1"}:    "index/i1",
	{Type: storage.SnapshotFile, Name: "s1"}: "snapshots/s1",
	{Type: storage.LockFile, Name: "l1"}:     "locks/l1",
}

// checkSamples checks that s holds sampleFiles (each file's content is its path)
// and nothing else.
func checkSamples(t *testing.T, s storage.Storage) {
	t.Helper()
	ctx := testCtx(t)
	for h, rel := range sampleFiles {
		if b, err := s.Load(ctx, h, 0, 0); err != nil || string(b) != rel {
			t.Errorf("%s: Load(%v) = %q, %v; want %q", s.Location(), h, b, err, rel)
		}
	}
	for _, ft := range storage.FileTypes {
		var got []string
		err := s.List(ctx, ft, func(fi storage.FileInfo) error {
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for h := range sampleFiles {
			if h.Type == ft {
				want++
			}
		}
		if len(got) != want {
			t.Errorf("%s: List(%s) = %q, want %d files", s.Location(), ft, got, want)
		}
	}
}

// TestLayoutSharedWithLocal checks that the layout is the local provider's, so a
// repository copied between a server and a local folder works in both.
func TestLayoutSharedWithLocal(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	ctx := testCtx(t)

	dir := filepath.Join(srv.Dir, "fromsftp")
	s := createAt(t, srv.Location(dir))
	for h, rel := range sampleFiles {
		if err := s.Save(ctx, h, []byte(rel)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%v is not at %s: %v", h, rel, err)
		} else if fi.Mode().Perm() != fileMode {
			t.Errorf("%v has mode %v, want %v", h, fi.Mode().Perm(), fs.FileMode(fileMode))
		}
	}
	for _, d := range []string{"", "keys", "data", "index", "snapshots", "locks", "data/00", "data/7f", "data/ff"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != dirMode {
			t.Errorf("folder %q: %v, %v; want a folder of mode %v", d, fi, err, fs.FileMode(dirMode))
		}
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "data")); err != nil || len(entries) != 256+1 { // 00..ff and Zq
		t.Errorf("data holds %d entries (%v), want 257", len(entries), err)
	}
	if found := tempFiles(t, dir); len(found) != 0 {
		t.Errorf("temporary files left behind: %v", found)
	}
	l, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, l)

	// And the other way: a local repository served over sftp.
	dir = filepath.Join(srv.Dir, "fromlocal")
	l, err = local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for h, rel := range sampleFiles {
		if err := l.Save(ctx, h, []byte(rel)); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(ctx, parse(t, srv.Location(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSamples(t, s)
}

func TestCreateOpen(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	ctx := testCtx(t)
	for _, dir := range []string{filepath.Join(srv.Dir, "missing"), srv.Dir} { // no folder; a folder without config
		loc := srv.Location(dir)
		_, err := Open(ctx, parse(t, loc))
		if err == nil || err.Error() != "no repository at "+loc || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s): %v, want \"no repository at %s\" matching fs.ErrNotExist", loc, err, loc)
		}
	}

	dir := filepath.Join(srv.Dir, "a", "b", "repo") // parents made too
	loc := srv.Location(dir)
	s := createAt(t, loc)
	if s.Location() != loc {
		t.Errorf("Location() = %q, want %q", s.Location(), loc)
	}
	if storage.Connections(s) != connections {
		t.Errorf("storage.Connections = %d, want %d", storage.Connections(s), connections)
	}
	if _, err := Create(ctx, parse(t, loc)); err != nil {
		t.Errorf("Create again before the config is saved: %v", err)
	}
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, parse(t, loc)); !errors.Is(err, storage.ErrExists) || !strings.Contains(err.Error(), loc) {
		t.Errorf("Create over a repository: %v, want an error naming the location and matching ErrExists", err)
	}
	o, err := Open(ctx, parse(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if b, err := o.Load(ctx, storage.Handle{Type: storage.ConfigFile}, 0, 0); err != nil || string(b) != "cfg" {
		t.Errorf("Load(config) after Open = %q, %v", b, err)
	}

	file := filepath.Join(srv.Dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, parse(t, srv.Location(file))); err == nil {
		t.Error("Create over a plain file succeeded")
	}

	// A path relative to the login folder.
	rel := "cairn-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	r := createAt(t, srv.Location("~/"+rel))
	t.Cleanup(func() { r.sftpRemoveAll(t, rel) })
	if err := r.Save(ctx, storage.Handle{Type: storage.KeyFile, Name: "k"}, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, parse(t, srv.Location(rel))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a relative path without config: %v", err)
	}

	s.Close()
	if _, err := s.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Stat after Close: %v, want an error matching fs.ErrClosed", err)
	}
}

// sftpRemoveAll removes p on the server, for cleanups outside srv.Dir.
func (s *Storage) sftpRemoveAll(t *testing.T, p string) {
	c, err := s.client(context.Background())
	if err != nil {
		t.Log(err)
		return
	}
	if err := c.sftp.RemoveAll(p); err != nil {
		t.Log(err)
	}
}

// hookCtx is a context that calls hook with the count of its Err calls before
// answering them, and answers context.Canceled once cancel returns true.
type hookCtx struct {
	context.Context
	n    atomic.Int32
	hook func(n int) (cancel bool)
}

func (c *hookCtx) Err() error {
	if c.hook(int(c.n.Add(1))) {
		return context.Canceled
	}
	return nil
}

func TestCancelMidSave(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	dir := filepath.Join(srv.Dir, "repo")
	s := createAt(t, srv.Location(dir))
	h := storage.Handle{Type: storage.PackFile, Name: "abcd"}
	data := storagetest.RandomData(3*writeChunk + 5)
	for calls := 1; calls <= 6; calls++ {
		ctx := &hookCtx{Context: context.Background(), hook: func(n int) bool { return n >= calls }}
		if err := s.Save(ctx, h, data); !errors.Is(err, context.Canceled) {
			t.Errorf("Save cancelled at check %d: %v, want context.Canceled", calls, err)
		}
		if _, err := s.Stat(context.Background(), h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save cancelled at check %d left the file (Stat: %v)", calls, err)
		}
		if found := tempFiles(t, dir); len(found) != 0 {
			t.Errorf("Save cancelled at check %d left temporary files: %v", calls, found)
		}
	}
	if err := s.Save(context.Background(), h, data); err != nil {
		t.Fatalf("Save after the cancelled ones: %v", err)
	}
}

// TestRedialAfterRestart stops the server between operations: operations fail
// (they do not hang) while it is down, and work again, on a new connection, as
// soon as it is back.
func TestRedialAfterRestart(t *testing.T) {
	srv := testserver.SSHDPrivate(t)
	srv.Env(t)
	ctx := testCtx(t)
	s := createAt(t, srv.Location(filepath.Join(srv.Dir, "repo")))
	h := storage.Handle{Type: storage.IndexFile, Name: "before"}
	if err := s.Save(ctx, h, []byte("before")); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	if _, err := s.Load(ctx, h, 0, 0); err == nil {
		t.Fatal("Load while the server is down succeeded")
	} else if errors.Is(err, fs.ErrNotExist) || errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Load while the server is down: %v, which retrying cannot cure", err)
	}
	srv.Restart(t)

	if b, err := s.Load(ctx, h, 0, 0); err != nil || string(b) != "before" {
		t.Fatalf("Load after the restart = %q, %v", b, err)
	}
	after := storage.Handle{Type: storage.IndexFile, Name: "after"}
	if err := s.Save(ctx, after, []byte("after")); err != nil {
		t.Fatalf("Save after the restart: %v", err)
	}
	if dials := s.dials; dials != 2 {
		t.Errorf("%d connections made, want 2", dials)
	}

	// A restart with no operation while the server was down.
	srv.Restart(t)
	var names []string
	if err := s.List(ctx, storage.IndexFile, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil || len(names) != 2 {
		t.Errorf("List after a second restart = %q, %v", names, err)
	}
	if s.dials != 3 {
		t.Errorf("%d connections made, want 3", s.dials)
	}
}

// TestDropMidSave drops the connection while Save writes: the Save is tried again
// on a new connection, and the temporary file of the broken attempt is removed.
func TestDropMidSave(t *testing.T) {
	srv := testserver.SSHDPrivate(t)
	srv.Env(t)
	dir := filepath.Join(srv.Dir, "repo")
	s := createAt(t, srv.Location(dir))
	data := storagetest.RandomData(3*writeChunk + 5)

	// The server comes back at once: the Save succeeds on its second attempt.
	h := storage.Handle{Type: storage.PackFile, Name: "ab01"}
	ctx := &hookCtx{Context: context.Background(), hook: func(n int) bool {
		if n == 3 { // in the middle of writing
			srv.Restart(t)
		}
		return false
	}}
	if err := s.Save(ctx, h, data); err != nil {
		t.Fatalf("Save across a restart: %v", err)
	}
	if b, err := s.Load(context.Background(), h, 0, 0); err != nil || !bytes.Equal(b, data) {
		t.Errorf("Load after a Save across a restart: %d bytes, %v", len(b), err)
	}
	if found := tempFiles(t, dir); len(found) != 0 {
		t.Errorf("temporary files left behind: %v", found)
	}

	// The server stays down: the Save fails, leaving its temporary file, which
	// the next connection removes.
	h2 := storage.Handle{Type: storage.PackFile, Name: "ab02"}
	ctx = &hookCtx{Context: context.Background(), hook: func(n int) bool {
		if n == 3 {
			srv.Stop(t)
		}
		return false
	}}
	if err := s.Save(ctx, h2, data); err == nil {
		t.Fatal("Save while the server went down succeeded")
	}
	if found := tempFiles(t, dir); len(found) != 1 {
		t.Fatalf("temporary files after the broken Save: %v, want the one it could not remove", found)
	}
	srv.Restart(t)
	if _, err := s.Stat(context.Background(), h2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of the file whose Save broke: %v, want ErrNotExist", err)
	}
	if found := tempFiles(t, dir); len(found) != 0 {
		t.Errorf("temporary files after reconnecting: %v", found)
	}
}

// countingProxy forwards TCP connections to a server and counts the bytes that
// come back.
type countingProxy struct {
	l    net.Listener
	back atomic.Int64
	wg   sync.WaitGroup
}

func startProxy(t *testing.T, target string) *countingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{l: l}
	var conns sync.Map
	t.Cleanup(func() {
		l.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		p.wg.Wait()
	})
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, nil)
			conns.Store(s, nil)
			p.wg.Go(func() { io.Copy(s, c); s.Close() })
			p.wg.Go(func() { io.Copy(countingWriter{c, &p.back}, s); c.Close() })
		}
	})
	return p
}

// countingWriter adds the bytes written to w to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (p *countingProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

// TestLoadReadsOnlyRange counts the bytes the server sends for a Load of a small
// range of a large file.
func TestLoadReadsOnlyRange(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	dir := filepath.Join(srv.Dir, "repo")
	createAt(t, srv.Location(dir))

	// Through the proxy, by a URL with no config entry: the default identity
	// file and known_hosts of $HOME.
	p := startProxy(t, srv.Addr)
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(srv.Host, strconv.Itoa(p.port())))}, srv.HostKey)
	appendFile(t, srv.KnownHostsFile, line+"\n")
	loc := fmt.Sprintf("sftp://%s@%s:%d%s", srv.User, srv.Host, p.port(), dir)
	if _, err := Open(testCtx(t), parse(t, loc)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a repository without config: %v", err)
	}
	s := createAt(t, loc)
	ctx := testCtx(t)
	h := storage.Handle{Type: storage.PackFile, Name: "ab"}
	data := storagetest.RandomData(4 << 20)
	if err := s.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ offset, length int64 }{{1 << 20, 1000}, {0, 0}, {3 << 20, 0}} {
		before := p.back.Load()
		b, err := s.Load(ctx, h, r.offset, r.length)
		got := p.back.Load() - before
		want := r.length
		if want == 0 {
			want = int64(len(data)) - r.offset
		}
		if err != nil || !bytes.Equal(b, data[r.offset:r.offset+want]) {
			t.Fatalf("Load(%d, %d) = %d bytes, %v", r.offset, r.length, len(b), err)
		}
		if got < want || got > want+16<<10 {
			t.Errorf("Load(%d, %d) of a %d-byte file: the server sent %d bytes, want %d and a little overhead", r.offset, r.length, len(data), got, want)
		}
	}
}

func appendFile(t testing.TB, name, text string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSaveLoad saves and loads 8 MiB pack files through the real sshd, as
// many at once as Connections says.
func BenchmarkSaveLoad(b *testing.B) {
	srv := testserver.SSHD(b)
	srv.Env(b)
	s, err := Create(context.Background(), parse(b, srv.Location(filepath.Join(srv.Dir, "repo"))))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := storagetest.RandomData(8 << 20)
	b.SetBytes(int64(len(data)) * 2)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	work := make(chan struct{})
	go func() {
		for range b.N {
			work <- struct{}{}
		}
		close(work)
	}()
	for range s.Connections() {
		wg.Go(func() {
			for range work {
				h := storage.Handle{Type: storage.PackFile, Name: fmt.Sprintf("%064x", next.Add(1))}
				if err := s.Save(context.Background(), h, data); err != nil {
					b.Error(err)
					continue
				}
				if got, err := s.Load(context.Background(), h, 0, 0); err != nil || len(got) != len(data) {
					b.Error(len(got), err)
				}
			}
		})
	}
	wg.Wait()
}
