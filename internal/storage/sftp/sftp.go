// Package sftp is a Storage in a folder on an SFTP server, reached over ssh the way
// OpenSSH's ssh reaches it: Host entries of ~/.ssh/config (HostName, User, Port,
// IdentityFile, IdentitiesOnly, IdentityAgent, UserKnownHostsFile, HostKeyAlias),
// the ssh-agent at $SSH_AUTH_SOCK, the default identity files, and host keys
// checked against known_hosts. An unknown or changed host key is an error, never
// accepted. cairn cannot prompt: a passphrase-protected key must be in ssh-agent,
// and password logins are not offered. A Host entry with ProxyJump or
// ProxyCommand is refused rather than ignored.
//
// The layout is that of the local provider (internal/storage/local), so a
// repository copied between a local folder and a server (rsync, scp) works in both:
//
//	PATH/config
//	PATH/keys/NAME
//	PATH/data/XX/NAME      XX is the first two characters of NAME (00..ff made up front)
//	PATH/index/NAME
//	PATH/snapshots/NAME
//	PATH/locks/NAME
//
// Save writes a temporary file ".tmp-*" beside the target, fsyncs it where the
// server can (fsync@openssh.com), makes it read-only and renames it into place.
// SFTP's rename never replaces a file (OpenSSH's server links, then unlinks), so a
// name that exists is ErrExists. All operations share one ssh connection, on which
// pkg/sftp pipelines requests. When the connection drops (the server restarted),
// the next operation dials again; Load, Stat, List and a Save that had not yet
// renamed its file are also retried once on the new connection.
package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"cairn/internal/storage"
)

const (
	tmpPrefix = ".tmp-"
	fileMode  = 0o400
	dirMode   = 0o700
	// writeChunk is how much Save writes between checks of its context.
	writeChunk = 2 << 20
	// readChunk is how much Load reads between checks of its context.
	readChunk = 4 << 20
	// blindRead is the longest range Load reads without asking for the file's size
	// first (to check the range); a short read then asks.
	blindRead = 8 << 20
	// listAhead is how many data subfolders List reads ahead of the one it reports.
	listAhead = 8
	// mkdirWorkers is how many folders Create makes at once.
	mkdirWorkers = 16
	// probeTimeout bounds the keepalive that tells a broken connection from a
	// failed request.
	probeTimeout = 15 * time.Second
	// connections is what Connections returns.
	connections = 4
)

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("sftp storage: %w", fs.ErrClosed)

// Storage is a repository folder on an SFTP server. Create or Open one; all
// methods are safe for concurrent use.
type Storage struct {
	cfg  Config
	root string

	mu      sync.Mutex
	conn    *conn // nil until dialled, and after a drop
	closed  bool
	orphans []string // temporary files a dropped connection kept Save from removing
	dials   int      // connections made, for tests
}

var _ storage.Storage = (*Storage)(nil)

// conn is one ssh connection with its sftp session.
type conn struct {
	ssh   *ssh.Client
	sftp  *pkgsftp.Client
	dead  chan struct{} // closed when the ssh connection ends
	fsync bool          // the server offers fsync@openssh.com
}

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// close ends the session and the connection; there is nothing to do about errors.
func (c *conn) close() {
	_ = c.sftp.Close()
	_ = c.ssh.Close()
}

// probe reports whether the ssh connection still answers a keepalive.
func (c *conn) probe() bool {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	t := time.NewTimer(probeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-c.dead:
		return false
	case <-t.C:
		return false
	}
}

// Create connects and makes the folders of a new repository at cfg.Path (and the
// path itself if need be). It fails with an error matching storage.ErrExists if a
// repository, that is a config file, is already there. The config itself is
// written later by Save.
func Create(ctx context.Context, cfg Config) (*Storage, error) {
	s, err := newStorage(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.create(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Storage) create(ctx context.Context) error {
	c, err := s.client(ctx)
	if err != nil {
		return err
	}
	if _, err := c.sftp.Lstat(s.path(storage.Handle{Type: storage.ConfigFile})); err == nil {
		return fmt.Errorf("a repository already exists at %s: %w", s.Location(), storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create repository %s: %w", s.Location(), err)
	}
	if fi, err := c.sftp.Stat(s.root); errors.Is(err, fs.ErrNotExist) {
		if err := c.sftp.MkdirAll(s.root); err != nil {
			return fmt.Errorf("create repository %s: %w", s.Location(), err)
		}
		if err := c.sftp.Chmod(s.root, dirMode); err != nil {
			return fmt.Errorf("create repository %s: %w", s.Location(), err)
		}
	} else if err != nil {
		return fmt.Errorf("create repository %s: %w", s.Location(), err)
	} else if !fi.IsDir() {
		return fmt.Errorf("create repository %s: %s is not a folder", s.Location(), s.root)
	}
	var dirs []string
	for _, t := range storage.FileTypes[1:] {
		dirs = append(dirs, path.Join(s.root, string(t)))
	}
	mkdirs := func(dirs []string) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(mkdirWorkers)
		for _, d := range dirs {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				return mkdir(c, d)
			})
		}
		return g.Wait()
	}
	if err := mkdirs(dirs); err != nil {
		return fmt.Errorf("create repository %s: %w", s.Location(), err)
	}
	dirs = dirs[:0]
	for i := 0; i < 256; i++ {
		dirs = append(dirs, path.Join(s.root, string(storage.PackFile), fmt.Sprintf("%02x", i)))
	}
	if err := mkdirs(dirs); err != nil {
		return fmt.Errorf("create repository %s: %w", s.Location(), err)
	}
	return nil
}

// mkdir makes folder d with dirMode; a folder already there is fine.
func mkdir(c *conn, d string) error {
	if err := c.sftp.Mkdir(d); err != nil {
		// The server's error for an existing name is a generic failure: look.
		if fi, serr := c.sftp.Lstat(d); serr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	return c.sftp.Chmod(d, dirMode)
}

// Open connects to the repository at cfg. If the folder or its config file does
// not exist the error says "no repository at LOCATION" and matches fs.ErrNotExist.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	s, err := newStorage(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := s.client(ctx); err != nil {
		return nil, err
	}
	if _, err := s.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); errors.Is(err, fs.ErrNotExist) {
		_ = s.Close()
		return nil, noRepoError(s.Location())
	} else if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open repository %s: %w", s.Location(), err)
	}
	return s, nil
}

type noRepoError string

func (e noRepoError) Error() string { return "no repository at " + string(e) }
func (e noRepoError) Unwrap() error { return fs.ErrNotExist }

func newStorage(cfg Config) (*Storage, error) {
	if cfg.Host == "" {
		return nil, errors.New("sftp: no host given")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("sftp: port %d is not a port number", cfg.Port)
	}
	p := cfg.Path
	if p == "~" {
		p = "."
	} else if rest, ok := strings.CutPrefix(p, "~/"); ok {
		p = rest
	}
	if p == "" {
		return nil, errors.New("sftp: no repository path given")
	}
	return &Storage{cfg: cfg, root: path.Clean(p)}, nil
}

// Location implements storage.Storage: the location as ParseLocation reads it.
func (s *Storage) Location() string { return s.cfg.String() }

// Connections says how many pack files to save at once: sftp pipelines the
// requests of several saves on its one connection.
func (s *Storage) Connections() int { return connections }

// path returns the file name of h, which must be valid.
func (s *Storage) path(h storage.Handle) string {
	switch h.Type {
	case storage.ConfigFile:
		return path.Join(s.root, string(h.Type))
	case storage.PackFile:
		return path.Join(s.root, string(h.Type), h.Name[:min(2, len(h.Name))], h.Name)
	}
	return path.Join(s.root, string(h.Type), h.Name)
}

// client returns the live connection, dialling a new one if there is none or the
// last one died; after a new dial it removes the temporary files orphaned by the
// old connection.
func (s *Storage) client(ctx context.Context) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.conn != nil && s.conn.alive() {
		return s.conn, nil
	}
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Location(), err)
	}
	s.conn = c
	s.dials++
	for _, p := range s.orphans {
		_ = c.sftp.Remove(p) // best effort; gone already if another process cleaned up
	}
	s.orphans = nil
	return c, nil
}

// connect dials the server and starts an sftp session.
func (s *Storage) connect(ctx context.Context) (*conn, error) {
	t, err := resolve(s.cfg)
	if err != nil {
		return nil, err
	}
	sc, err := dial(ctx, t)
	if err != nil {
		return nil, err
	}
	client, err := pkgsftp.NewClient(sc, pkgsftp.UseConcurrentWrites(true))
	if err != nil {
		_ = sc.Close()
		return nil, fmt.Errorf("start sftp on %s (is the sftp subsystem enabled?): %v", t.addr(), err)
	}
	c := &conn{ssh: sc, sftp: client, dead: make(chan struct{})}
	if v, ok := client.HasExtension("fsync@openssh.com"); ok && v == "1" {
		c.fsync = true
	}
	go func() {
		_ = sc.Wait() // why it ended does not matter: the next operation dials again
		close(c.dead)
	}()
	go func() {
		_ = client.Wait() // the sftp session ended: the connection is no use
		_ = sc.Close()
	}()
	return c, nil
}

// drop forgets c, if it is still the current connection, and closes it.
func (s *Storage) drop(c *conn) {
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
	c.close()
}

// fromServer reports whether err is an answer of the server (or of this package)
// rather than a failure of the connection.
func fromServer(err error) bool {
	var se *pkgsftp.StatusError
	return errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, storage.ErrInvalid) || errors.Is(err, storage.ErrExists) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// broken reports whether err, returned by an operation on c, means that c is
// broken: a lost connection, or an error that is no answer of the server when c
// no longer answers a keepalive.
func broken(c *conn, err error) bool {
	if errors.Is(err, pkgsftp.ErrSSHFxConnectionLost) || !c.alive() {
		return true
	}
	return !fromServer(err) && !c.probe()
}

// do runs fn on the live connection. If fn fails because the connection broke,
// the connection is dropped (the next operation dials again) and, if retry
// reports true, fn runs once more on a new connection.
func (s *Storage) do(ctx context.Context, retry func() bool, fn func(*conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := s.client(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		if err == nil || !broken(c, err) {
			return err
		}
		s.drop(c)
		if attempt > 0 || !retry() || ctx.Err() != nil {
			return fmt.Errorf("connection to %s lost: %w", s.cfg.Host, err)
		}
	}
}

func always() bool { return true }
func never() bool  { return false }

// Save implements storage.Storage.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	renaming := false // once the rename is sent, a retry could meet this Save's own file
	err := s.do(ctx, func() bool { return !renaming }, func(c *conn) error {
		return s.save(ctx, c, h, data, &renaming)
	})
	if err != nil && !errors.Is(err, storage.ErrExists) && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("save %v: %w", h, err)
	}
	return err
}

func (s *Storage) save(ctx context.Context, c *conn, h storage.Handle, data []byte, renaming *bool) error {
	final := s.path(h)
	dir := path.Dir(final)
	tmp := path.Join(dir, tmpPrefix+randomHex())
	f, err := c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, fs.ErrNotExist) && h.Type != storage.ConfigFile {
		// A folder made on demand: a data subfolder outside 00..ff, or one deleted.
		if err = mkdir(c, dir); err == nil {
			f, err = c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		}
	}
	if err != nil {
		return err
	}
	err = writeFile(ctx, c, f, data)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		*renaming = true
		err = c.sftp.Rename(tmp, final)
		if err != nil && fromServer(err) {
			// The server's answer when the target exists is a generic failure: look.
			if _, serr := c.sftp.Lstat(final); serr == nil {
				s.removeTemp(c, tmp)
				return fmt.Errorf("save %v: %w", h, storage.ErrExists)
			}
		}
	}
	if err != nil {
		s.removeTemp(c, tmp)
		return err
	}
	return nil
}

// writeFile writes data to f, fsyncs it if the server can, makes it read-only and
// closes it; f is closed whatever happens.
func writeFile(ctx context.Context, c *conn, f *pkgsftp.File, data []byte) error {
	for len(data) > 0 {
		if err := ctx.Err(); err != nil {
			_ = f.Close() // the file is removed
			return err
		}
		n := min(len(data), writeChunk)
		if _, err := f.Write(data[:n]); err != nil {
			_ = f.Close()
			return err
		}
		data = data[n:]
	}
	if c.fsync {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
	}
	_ = f.Chmod(fileMode) // best effort: some servers refuse to change modes
	return f.Close()
}

// removeTemp removes a temporary file; if the connection broke, the next
// connection removes it.
func (s *Storage) removeTemp(c *conn, tmp string) {
	if err := c.sftp.Remove(tmp); err != nil && !fromServer(err) {
		s.mu.Lock()
		s.orphans = append(s.orphans, tmp)
		s.mu.Unlock()
	}
}

func randomHex() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Load implements storage.Storage.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := h.Valid(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, storage.Invalidf("load %v: offset %d length %d outside the file", h, offset, length)
	}
	var buf []byte
	err := s.do(ctx, always, func(c *conn) (err error) {
		buf, err = s.load(ctx, c, h, offset, length)
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrInvalid) && !errors.Is(err, ctx.Err()) {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	return buf, err
}

func (s *Storage) load(ctx context.Context, c *conn, h storage.Handle, offset, length int64) ([]byte, error) {
	f, err := c.sftp.Open(s.path(h))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	// inside returns the file's size, or an error if the range is not inside it.
	inside := func() (int64, error) {
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if size := fi.Size(); offset > size || length > size-offset {
			return 0, storage.Invalidf("load %v: offset %d length %d outside file of %d bytes", h, offset, length, size)
		}
		return fi.Size(), nil
	}
	n := length
	if length == 0 || length > blindRead {
		size, err := inside()
		if err != nil {
			return nil, err
		}
		if length == 0 {
			n = size - offset
		}
	}
	buf := make([]byte, n)
	for done := int64(0); done < n; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(n-done, readChunk)
		k, err := f.ReadAt(buf[done:done+m], offset+done)
		done += int64(k)
		switch {
		case int64(k) == m:
		case err == io.EOF || err == nil:
			// Short: outside the file, or the file is shorter than its size said.
			if _, err := inside(); err != nil {
				return nil, err
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
	return buf, nil
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	var fi os.FileInfo
	err := s.do(ctx, always, func(c *conn) (err error) {
		fi, err = c.sftp.Stat(s.path(h))
		return err
	})
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %v: %w", h, err)
	}
	return storage.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// List implements storage.Storage. It skips temporary files and any name that is
// not a valid handle of type t. If the connection drops before fn was called it
// tries once more.
func (s *Storage) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	called := false
	var fnErr error
	visit := func(fi storage.FileInfo) error {
		called = true
		fnErr = fn(fi)
		return fnErr
	}
	err := s.do(ctx, func() bool { return !called }, func(c *conn) error {
		return s.list(ctx, c, t, visit)
	})
	if err != nil && fnErr == nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("list %s: %w", t, err)
	}
	return err
}

func (s *Storage) list(ctx context.Context, c *conn, t storage.FileType, fn func(storage.FileInfo) error) error {
	switch t {
	case storage.ConfigFile:
		fi, err := c.sftp.Stat(s.path(storage.Handle{Type: t}))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(storage.FileInfo{Size: fi.Size()})
	case storage.PackFile:
		return s.listPacks(ctx, c, fn)
	}
	entries, err := readDir(ctx, c, path.Join(s.root, string(t)))
	if err != nil {
		return err
	}
	return visitFiles(ctx, t, entries, "", fn)
}

// listPacks lists the data subfolders, reading up to listAhead of them at once
// while fn is called, in one goroutine, for the files of the earliest.
func (s *Storage) listPacks(ctx context.Context, c *conn, fn func(storage.FileInfo) error) error {
	top := path.Join(s.root, string(storage.PackFile))
	entries, err := readDir(ctx, c, top)
	if err != nil {
		return err
	}
	var subs []string
	for _, e := range entries {
		if e.IsDir() {
			subs = append(subs, e.Name())
		}
	}
	type listing struct {
		entries []os.FileInfo
		err     error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan listing, len(subs))
	start := func(i int) {
		results[i] = make(chan listing, 1)
		go func() {
			e, err := readDir(rctx, c, path.Join(top, subs[i]))
			results[i] <- listing{e, err}
		}()
	}
	for i := range min(listAhead, len(subs)) {
		start(i)
	}
	for i, sub := range subs {
		r := <-results[i]
		if i+listAhead < len(subs) {
			start(i + listAhead)
		}
		if r.err != nil {
			return r.err
		}
		if err := visitFiles(ctx, storage.PackFile, r.entries, sub, fn); err != nil {
			return err
		}
	}
	return nil
}

// readDir lists folder dir; a missing folder has no entries.
func readDir(ctx context.Context, c *conn, dir string) ([]os.FileInfo, error) {
	entries, err := c.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// visitFiles calls fn for each regular file among entries whose name is a valid
// handle of type t and, if prefix is not empty, begins with prefix as a pack's
// name begins with its folder's.
func visitFiles(ctx context.Context, t storage.FileType, entries []os.FileInfo, prefix string, fn func(storage.FileInfo) error) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if !e.Mode().IsRegular() || (storage.Handle{Type: t, Name: name}).Valid() != nil {
			continue
		}
		if prefix != "" && name[:min(2, len(name))] != prefix {
			continue
		}
		if err := fn(storage.FileInfo{Name: name, Size: e.Size()}); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.do(ctx, never, func(c *conn) error { return c.sftp.Remove(s.path(h)) })
	if err != nil {
		return fmt.Errorf("remove %v: %w", h, err)
	}
	return nil
}

// Close implements storage.Storage: it closes the connection. Later calls of
// any method fail.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	return nil
}
